"""HTML views of the X-ray data (`tinylm_hf.xray`) for the demo's X-ray tab. Self-contained markup with inline
styles: nothing is fetched from a CDN, so it renders offline. Every coloured figure is also in a tooltip."""

import html

PALETTE = ("#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa")  # token backgrounds, in turn
MONO = "font-family:ui-monospace,Menlo,Consolas,monospace;"
BOX = f"style='{MONO}line-height:2;word-break:break-all;color:#111'"


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _tip(*parts) -> str:
    return _esc(" · ".join(str(p) for p in parts if p != ""))


def _rgba(rgb: tuple, strength: float) -> str:
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{max(0.0, min(1.0, strength)):.2f})"


def tokens_html(cut: dict, text: str) -> str:
    """The tokens of a text (`xray.tokens`): coloured spans (the byte pieces of one character share a colour and a
    dotted underline), the id and byte span in each tooltip, the context limit drawn as a red bar; a MEGABYTE model's
    patch boundaries as grey bars."""
    raw = text.encode()
    spans = []
    for t in cut["tokens"]:
        if cut["context"] is not None and t["index"] == cut["context"]:
            spans.append(f"<span style='border-left:3px solid #dc2626;padding-left:4px;color:#dc2626'>"
                         f"context ends ({cut['context']} tokens) </span>")
        elif t["index"] and "patch" in t and t["patch"] != cut["tokens"][t["index"] - 1]["patch"]:
            spans.append("<span class='xray-patch' style='border-left:2px solid #6b7280;margin:0 1px'></span>")
        start, end = t["bytes"]
        part = f"part of {raw[start:end].decode(errors='replace')!r}" if t["partial"] else ""
        style = (f"background:{PALETTE[t['group'] % len(PALETTE)]};padding:1px 2px;margin:0 1px;border-radius:3px;"
                 + ("text-decoration:underline dotted;" if t["partial"] else "")
                 + ("opacity:.35;" if not t["in_context"] else ""))
        tip = _tip(f"#{t['index']}", f"id {t['id']}", f"bytes {start}-{end}", part,
                   f"patch {t['patch']}" if "patch" in t else "")
        spans.append(f"<span class='xray-token' style='{style}' title='{tip}'>{_esc(t['shown'])}</span>")
    beyond = f" · {cut['beyond_context']} beyond the model's context" if cut["beyond_context"] else ""
    return (f"<div><b>{cut['count']} tokens</b> · {cut['bytes']} bytes · {cut['bytes_per_token']:.2f} bytes per "
            f"token{beyond}</div><div {BOX}>{''.join(spans)}</div>")


RED = (239, 68, 68)
PURPLE = (147, 51, 234)


def _surprisal_span(t: dict, css_class: str, color: str | None = None, note: str = "") -> str:
    """One token of `xray.surprisal`, shaded white (expected) to red (8+ bits) unless `color` is given; its bits,
    rank and the model's top choices in the tooltip."""
    alternatives = ", ".join(f"{a['text']!r} {a['p']:.0%}" for a in t["top"])
    tip = _tip(f"{t['bits']:.2f} bits", note, f"rank {t['rank']}", f"model's top: {alternatives}")
    return (f"<span class='{css_class}' style='background:{color or _rgba(RED, t['bits'] / 8)};padding:1px 1px' "
            f"title='{tip}'>{_esc(t['text'])}</span>")


def surprisal_html(now: dict, before: dict | None = None, label: str = "", before_label: str = "") -> str:
    """Each token coloured by its surprisal (`xray.surprisal`: white = expected, red = surprising), or with
    `before` (the same text at another step) by the change: green = easier to predict now, red = harder."""
    spans = []
    for i, t in enumerate(now["tokens"]):
        if before is None:
            spans.append(_surprisal_span(t, "xray-surprisal"))
        else:
            change = before["tokens"][i]["bits"] - t["bits"]  # > 0: easier now
            spans.append(_surprisal_span(t, "xray-surprisal", _rgba((34, 197, 94) if change > 0 else RED,
                                                                    abs(change) / 4),
                                         f"{before['tokens'][i]['bits']:.2f} bits at {before_label}"))
    head = f"<b>{label}</b>: mean {now['mean_bits']:.2f} bits per token (loss {now['loss']:.3f})"
    if before is not None:
        head += (f" · <b>{before_label}</b>: {before['mean_bits']:.2f} bits per token · green: easier to predict "
                 f"at {label} than at {before_label}, red: harder")
    else:
        head += " · white: expected, red: surprising (hover for the bits, the rank and the model's top choices)"
    return f"<div>{head}</div><div {BOX}>{''.join(spans)}</div>"


def next_token_html(nt: dict) -> str:
    """The next-token distribution at each sampling stage (`xray.next_token`), as bars side by side."""
    columns = []
    for stage in nt["stages"]:
        bars = "".join(
            f"<div class='xray-bar' style='display:flex;align-items:center;gap:6px;margin:2px 0' "
            f"title='id {t['id']} · {t['p']:.4f}'><span style='{MONO}width:7em;overflow:hidden;white-space:pre'>"
            f"{_esc(repr(t['text']))}</span><span style='display:inline-block;height:12px;"
            f"width:{max(1, round(t['p'] * 160))}px;background:#6366f1'></span><span>{t['p']:.1%}</span></div>"
            for t in stage["top"])
        cut = ""
        if stage["cut"]:
            dropped = ", ".join(f"{t['text']!r} {t['p']:.1%}" for t in stage["cut_top"][:4])
            cut = f"<div style='color:#b91c1c;font-size:90%'>cuts {stage['cut']:,} tokens: {_esc(dropped)}</div>"
        kept = f" <span style='color:#555'>({stage['kept']:,} tokens kept)</span>" if stage['cut'] else ""
        columns.append(f"<div class='xray-stage' style='min-width:15em'><b>{_esc(stage['name'])}</b>{kept}{bars}{cut}"
                       f"</div>")
    return (f"<div style='display:flex;gap:24px;flex-wrap:wrap'>{''.join(columns)}</div>"
            f"<div style='color:#555'>the last stage is what sampling draws from</div>")


def _table(col_labels: list[str], rows: list[tuple[str, list[str]]]) -> str:
    head = "".join(f"<th style='writing-mode:vertical-rl;font-weight:normal;{MONO}'>{_esc(c)}</th>" for c in col_labels)
    body = "".join(f"<tr><th style='{MONO}font-weight:normal;text-align:right;white-space:pre'>{_esc(label)}</th>"
                   f"{''.join(cells)}</tr>" for label, cells in rows)
    return (f"<div style='overflow:auto'><table style='border-collapse:collapse;font-size:11px'>"
            f"<tr><th></th>{head}</tr>{body}</table></div>")


def attention_html(att: dict, layer: int, head: int, limit: int = 64) -> str:
    """One head's attention (`xray.attention`) as a heatmap: row t is how token t spreads its attention over the
    tokens before it (each row sums to 1; nothing above the diagonal)."""
    if head >= att["weights"][layer].shape[0]:
        return f"<div>{att['layer_names'][layer]} has {att['weights'][layer].shape[0]} heads</div>"
    weights = att["weights"][layer][head][:limit, :limit]
    tokens = att["layer_tokens"][layer] if "layer_tokens" in att else att["tokens"]
    labels = [repr(t)[1:-1] for t in tokens[:limit]]
    rows = [(label, [f"<td style='width:12px;height:12px;background:{_rgba((37, 99, 235), float(w) ** 0.5)}' "
                     f"title='{_tip(f'{label!r} -> {labels[s]!r}', f'{float(w):.3f}')}'></td>"
                     for s, w in enumerate(weights[t])])
            for t, label in enumerate(labels)]
    note = f" (the first {limit})" if len(tokens) > limit else ""
    name = att["layer_names"][layer] if "layer_names" in att else ""
    return (f"<div>layer {layer + 1} {name}, head {head + 1}{note}: darker = more attention; rows are the attending "
            f"tokens</div>{_table(labels, rows)}")


def logit_lens_html(lens: dict, limit: int = 48) -> str:
    """The logit lens (`xray.logit_lens`): each layer's top token at each position, shaded by the probability it
    gives the model's final choice; bold where it already is the final choice."""
    if "note" in lens:
        return f"<div>{html.escape(lens['note'])}</div>"
    labels = [repr(t)[1:-1] for t in lens["tokens"][:limit]]
    rows = []
    for number, layer in reversed(list(enumerate(lens["layers"], start=1))):
        cells = []
        for position, cell in enumerate(layer[:limit]):
            top = cell["top"][0]["text"] if cell["top"] else ""
            bold = "font-weight:bold;" if top == lens["final"][position] else ""
            tip = _tip(", ".join(f"{t['text']!r} {t['p']:.0%}" for t in cell["top"]),
                       f"p(final {lens['final'][position]!r}) = {cell['p_final']:.2f}")
            cells.append(f"<td style='{MONO}{bold}padding:1px 3px;white-space:pre;background:"
                         f"{_rgba((34, 197, 94), cell['p_final'])}' title='{tip}'>{_esc(repr(top)[1:-1])}</td>")
        rows.append((f"layer {number}", cells))
    return (f"<div>the next token predicted after each layer (the hidden state read through the final norm and "
            f"the head), under each token of the text; green: the probability of the model's final choice; top row: "
            f"the model's output</div>{_table(labels, rows)}")


def members_html(view: dict, names: list[str]) -> str:
    """An ensemble's members side by side (`xray.members`): a line per member and one for the ensemble, each token
    shaded by its surprisal; then the members' disagreement before each token (purple: the Jensen-Shannon divergence
    of their next-token distributions), the positions where they disagree most outlined, numbered and listed with
    each member's first choices there."""
    lines = []
    for name, row, weight in [*zip(names, view["members"], view["weights"]), ("ensemble", view["ensemble"], None)]:
        spans = "".join(_surprisal_span(t, "xray-member-token") for t in row["tokens"])
        label = f"<b>{_esc(name)}</b>" + (f" (weight {weight:.2f})" if weight is not None else "")
        lines.append(f"<div class='xray-member'>{label}: {row['mean_bits']:.2f} bits per token</div>"
                     f"<div {BOX}>{spans}</div>")
    marks = {i: n for n, i in enumerate(view["most"], 1)}
    top = max(view["divergence"], default=0.0) or 1.0
    spans = []
    for i, (t, d) in enumerate(zip(view["ensemble"]["tokens"], view["divergence"])):
        outline = "outline:2px solid #7e22ce;" if i in marks else ""
        number = f"<sup style='color:#7e22ce'>{marks[i]}</sup>" if i in marks else ""
        spans.append(f"<span class='xray-disagreement' style='background:{_rgba(PURPLE, d / top)};{outline}"
                     f"padding:1px 1px' title='{_tip(f'{d:.3f} bits of disagreement before this token')}'>"
                     f"{_esc(t['text'])}</span>{number}")
    def choices(row: dict, i: int) -> str:  # a member's first two choices before token i
        return _esc(", ".join(f"{a['text']!r} {a['p']:.0%}" for a in row["tokens"][i]["top"][:2]))

    most = "".join(
        f"<li class='xray-disagrees'>before {_esc(repr(view['ensemble']['tokens'][i]['text']))} "
        f"({view['divergence'][i]:.2f} bits): "
        + "; ".join(f"{_esc(name)}: {choices(row, i)}" for name, row in zip(names, view["members"])) + "</li>"
        for i in view["most"])
    return ("".join(lines) + "<div><b>where the members disagree</b> (before each token: the divergence of their "
            "next-token distributions; darker: more)</div>" + f"<div {BOX}>{''.join(spans)}</div><ol>{most}</ol>")

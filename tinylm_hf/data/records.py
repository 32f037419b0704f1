"""TinyStories-Instruct records: their text format and the prompt each one makes. (Plain Python: the demo reads
it without loading `datasets`.)

A TinyStories-Instruct record (one per `<|endoftext|>`; header lines in any order, any subset):

    Features: Dialogue, BadEnding
    Words: quit, oak, gloomy
    Summary: Sara and Ben were playing in the park, ...
    Random sentence: The wind was cold.
    Story:

    Sara and Ben were playing in the park. ...
"""

HEADER_FIELDS = {"features": "Features", "words": "Words", "summary": "Summary", "random_sentence": "Random sentence"}
LIST_FIELDS = ("features", "words")


def parse_record(document: str) -> dict | None:
    """One TinyStories-Instruct record from its text; None if it has no `Story:` line."""
    record = {"features": [], "words": [], "summary": "", "random_sentence": "", "story": ""}
    lines = document.split("\n")
    names = {label.lower(): key for key, label in HEADER_FIELDS.items()}
    for i, line in enumerate(lines):
        label, sep, value = line.partition(":")
        label = label.strip().lower()
        if sep and label == "story":
            record["story"] = "\n".join([value.strip()] + lines[i + 1:]).strip()
            return record
        if sep and label in names:
            key = names[label]
            value = value.strip()
            record[key] = [v.strip() for v in value.split(",") if v.strip()] if key in LIST_FIELDS else value
    return None


def read_instruct_documents(documents) -> list[dict]:
    return [r for r in map(parse_record, documents) if r is not None and r["story"]]


def prompt_text(record: dict) -> str:
    """The user turn of a record: one line per header field it has, in a fixed order."""
    lines = ["Write a story."]
    for key, label in HEADER_FIELDS.items():
        value = record.get(key)
        if value:
            lines.append(f"{label}: {', '.join(value) if key in LIST_FIELDS else value}")
    return "\n".join(lines)


def record_messages(record: dict) -> list[dict]:
    return [{"role": "user", "content": prompt_text(record)}, {"role": "assistant", "content": record["story"]}]

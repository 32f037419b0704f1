"""Loading a saved model for inference or further training: safetensors only, our installed classes for tinylm
folders (no remote code), one clear line for every way it can fail. Imports no Trainer, so the demo, the export
and the X-ray code stay light."""

import os

from transformers import AutoModelForCausalLM

from .errors import UserError, hub_hint


def load_model(name_or_path: str, revision: str | None = None, attn_implementation: str = "sdpa",
               allow_pickle: bool = False):
    """A saved causal LM: safetensors weights only, our installed classes for tinylm (no remote code)."""
    if os.path.isdir(name_or_path):
        from .ensemble import is_ensemble  # (the ensemble loads its members with this function)

        if is_ensemble(name_or_path):
            raise UserError(f"{name_or_path} is an ensemble of models, not one: load it with tinylm_hf.ensemble."
                            f"Ensemble.from_pretrained; this command takes one model (a member's folder, e.g. "
                            f"{os.path.join(name_or_path, 'member-1')})")
        files = os.listdir(name_or_path)
        if "config.json" not in files:
            raise UserError(f"{name_or_path} is not a model folder (no config.json)")
        if not any(f.endswith(".safetensors") for f in files) and not allow_pickle:
            raise UserError(f"{name_or_path} has no .safetensors weights: pickle checkpoints (.bin) are refused "
                            f"because loading them can run code; convert them to safetensors, or pass "
                            f"--allow_pickle_weights if you trust the file")
    elif name_or_path.startswith((".", "/")):
        raise UserError(f"model folder not found: {name_or_path}")
    try:
        return AutoModelForCausalLM.from_pretrained(name_or_path, revision=revision, use_safetensors=not allow_pickle,
                                                    attn_implementation=attn_implementation)
    except OSError as err:
        raise UserError(f"cannot load the model {name_or_path!r}: {hub_hint(err)}") from err
    except Exception as err:  # a truncated or corrupted safetensors file
        if "safetensor" in type(err).__name__.lower() or "header" in str(err).lower() or "deserializ" in str(err):
            raise UserError(f"the weights in {name_or_path} are corrupted or truncated ({err}): "
                            f"re-download or re-save them") from err
        raise

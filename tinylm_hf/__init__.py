"""tinylm-hf: build a small language model from scratch, the Hugging Face way.

Importing the package registers TinyLM with the Auto classes, so `AutoConfig` / `AutoModelForCausalLM` load our
folders with our installed classes and never need `trust_remote_code`, and registers the faster training attention
(`tinylm_hf/attention.py`) with transformers' attention interface.
"""

import inspect

from transformers import AutoConfig, AutoModelForCausalLM

# registers the blocked causal attention for training: attn_implementation="tinylm_causal_blocks"
from . import attention  # noqa: F401
from .configuration_megabyte import MegabyteConfig
from .configuration_tinylm import TinyLMConfig
from .errors import UserError
from .modeling_megabyte import MegabyteForCausalLM
from .modeling_tinylm import TinyLMForCausalLM, TinyLMModel, TinyLMPreTrainedModel

__version__ = "0.1.0"

for config_class, model_class in ((TinyLMConfig, TinyLMForCausalLM), (MegabyteConfig, MegabyteForCausalLM)):
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModelForCausalLM.register(config_class, model_class, exist_ok=True)
    # save_pretrained() then writes `auto_map` and copies the code files next to the weights
    config_class.register_for_auto_class()
    model_class.register_for_auto_class("AutoModelForCausalLM")
    # generate() asks a model registered with an auto class for its forward's signature at every new token
    # (transformers 5 looks for a `cache_position` argument there): ~0.16 ms a token on a CPU. Computed once here.
    model_class.forward.__signature__ = inspect.signature(model_class.forward)

__all__ = ["MegabyteConfig", "MegabyteForCausalLM", "TinyLMConfig", "TinyLMForCausalLM", "TinyLMModel",
           "TinyLMPreTrainedModel", "UserError", "__version__"]

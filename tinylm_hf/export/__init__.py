"""Export a model to run outside PyTorch, each format checked against PyTorch by the tests.

    python -m tinylm_hf.export onnx MODEL_DIR OUT_DIR [--quantize q8]       ONNX Runtime, transformers.js (onnx.py)
    python -m tinylm_hf.export web MODEL_DIR OUT_DIR [--offline]             a static page on transformers.js (web.py)
    python -m tinylm_hf.export gguf MODEL_DIR OUT.gguf [--type q8_0]         llama.cpp (gguf.py)
"""

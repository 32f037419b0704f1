"""Export a model to run outside PyTorch, each format checked against PyTorch by the tests.

    tinylm export onnx MODEL_DIR OUT_DIR [--quantize q8|q4]    ONNX Runtime, transformers.js (onnx.py)
    tinylm export web MODEL_DIR OUT_DIR [--offline]             a static page on transformers.js (web.py; an
                                                                ensemble folder: a page that averages its members)
    tinylm export gguf MODEL_DIR OUT.gguf [--type q8_0|q4_0]    llama.cpp (gguf.py)
    tinylm export executorch MODEL_DIR OUT_DIR [--quantize 8da4w]  ExecuTorch, for phones (executorch.py)
    tinylm export check MODEL_DIR EXPORTED                      what each format loses against the model (check.py)
"""

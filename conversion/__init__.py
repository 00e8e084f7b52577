"""Model path: data, model, training, quantization, export, engines, benchmark."""

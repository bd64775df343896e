"""Each runtime's export and loading together: ONNX (onnx_export writes it, onnx_runtime runs it with ONNX Runtime),
OpenVINO IR (openvino_export converts and quantizes it, openvino_runtime runs it), checked against PyTorch (parity)
on real images (images); `python -m detect.export` is the command (configs/export.yaml). Imports detect.utils,
structures, config, data and modeling; detect.inference imports this package, never the other way round."""

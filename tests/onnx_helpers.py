"""Shared by the ONNX tests: run a model in ONNX Runtime as the reference."""
import onnxruntime as ort


def run_ort(model, feed):
    """Outputs by name; graph optimizations off so ORT computes the ops as written."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))

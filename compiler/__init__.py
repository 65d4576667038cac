"""Yuan compiler: Graph IR (ir/), ONNX <-> IR (onnx/), graph passes (passes/), Relax lowering (relax/),
compile targets (targets.py, target_features.py), per-backend pipelines (backends/) and compile_graph (build.py)."""

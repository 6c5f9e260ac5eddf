"""Run an ONNX model through onnxruntime, the reference engine, for tests/models.rs.

Usage: python3 tests/ort_infer.py MODEL.onnx < ROWS.json
ROWS.json is a JSON array of float rows (the model's one input, float32 [N, F]). Prints a JSON
object mapping each output's name to its values, flattened.
"""

import json
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
rows = np.array(json.load(sys.stdin), dtype=np.float32)
outputs = session.run(None, {session.get_inputs()[0].name: rows})
print(json.dumps({o.name: v.ravel().tolist() for o, v in zip(session.get_outputs(), outputs)}))

"""Drive aimass's Open Inference Protocol routes with NVIDIA's own client, tritonclient[http],
unmodified, as tests/models.rs does: once with JSON tensors (binary_data=False) and once with the
client's defaults, which send and receive tensors as binary data.

Usage: python3 tests/oip_client.py URL TOKEN MODEL FEATURES_JSON
Prints one JSON object: what the client saw (liveness, readiness, metadata, outputs).
"""
import json
import sys

import numpy as np
import tritonclient.http as http

url, token, model, rows = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = http.InferenceServerClient(url=url.removeprefix("http://"))
headers = {"Authorization": f"Bearer {token}"}
x = np.array(rows, dtype=np.float32)
inp = http.InferInput("features", list(x.shape), "FP32")
inp.set_data_from_numpy(x, binary_data=False)
outs = [http.InferRequestedOutput("label", binary_data=False),
        http.InferRequestedOutput("probabilities", binary_data=False)]
result = client.infer(model, [inp], outputs=outs, headers=headers, request_id="triton-1")
# The client's defaults: binary input and binary outputs.
binp = http.InferInput("features", list(x.shape), "FP32")
binp.set_data_from_numpy(x)
bin_outs = [http.InferRequestedOutput("label"), http.InferRequestedOutput("probabilities")]
binary = client.infer(model, [binp], outputs=bin_outs, headers=headers)
meta = client.get_model_metadata(model, headers=headers)
print(json.dumps({
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model, headers=headers),
    "server": client.get_server_metadata()["name"],
    "platform": meta["platform"],
    "inputs": meta["inputs"],
    "id": result.get_response()["id"],
    "label": result.as_numpy("label").tolist(),
    "probabilities": result.as_numpy("probabilities").tolist(),
    "binary_label": binary.as_numpy("label").tolist(),
    "binary_probabilities": binary.as_numpy("probabilities").tolist(),
}))

// Runs an original MoveNet TF.js graph model on raw model inputs and prints its outputs as JSON.
//
//   node run.js MODEL_JSON INPUTS_JSON [node names...]
//
// INPUTS_JSON: {"size": S, "inputs": {"name": "<base64 of S*S*3 uint8 RGB>", ...}}, the exact
// model input (already cropped and resized by Python). Prints {"backend", "outputs": {name:
// {"keypoints": [[y, x, score] x 17] (normalised, the graph's own decoding), "<node>": [...]}}}.
// Extra node names return those intermediate tensors too (for debugging a port layer by layer).
// Offline: the model is read from disk with tf.io.fromMemory; no network, no tfjs-node.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');

async function main() {
  const [modelJson, inputsJson, ...nodes] = process.argv.slice(2);
  const backend = process.env.TFJS_BACKEND || 'wasm';
  await tf.setBackend(backend);
  await tf.ready();
  const spec = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const dir = path.dirname(modelJson);
  const weightSpecs = [].concat(...spec.weightsManifest.map((g) => g.weights));
  const buffers = [].concat(...spec.weightsManifest.map((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const data = Buffer.concat(buffers);
  const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const model = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: spec.modelTopology, weightSpecs, weightData }));
  const { size, inputs } = JSON.parse(fs.readFileSync(inputsJson, 'utf8'));
  const outputs = {};
  for (const [name, b64] of Object.entries(inputs)) {
    const pixels = Int32Array.from(Buffer.from(b64, 'base64'));
    const input = tf.tensor4d(pixels, [1, size, size, 3], 'int32');
    const names = ['Identity:0', ...nodes];
    let results = model.execute(input, names);
    if (!Array.isArray(results)) results = [results];
    const entry = {};
    for (let i = 0; i < names.length; i++) {
      const key = i === 0 ? 'keypoints' : names[i];
      const value = await results[i].array();
      entry[key] = i === 0 ? value[0][0] : value;
    }
    outputs[name] = entry;
    tf.dispose([input, ...results]);
  }
  process.stdout.write(JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version.tfjs, outputs }));
}

main().catch((err) => { console.error(err); process.exit(1); });

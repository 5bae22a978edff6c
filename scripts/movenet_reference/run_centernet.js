// Runs the original CenterNet TF.js graph model on raw model inputs and prints its outputs as JSON.
//
//   node run_centernet.js MODEL_JSON INPUTS_JSON
//
// INPUTS_JSON: {"size": S, "inputs": {"name": "<base64 of S*S*3 uint8 RGB>", ...}}, the exact model
// input (already resized by Python), fed as float32 0..255 like vladmandic/human does. Prints
// {"backend", "tfjs", "outputs": {name: {"detections": [100 x [x1, y1, x2, y2, score, class]],
// "person": [S/4 x [S/4 values]]}}}: the graph's own decoding and the person channel (class 0) of
// its 80-class map. Offline: the model is read from disk with tf.io.fromMemory.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');

async function main() {
  const [modelJson, inputsJson] = process.argv.slice(2);
  await tf.setBackend(process.env.TFJS_BACKEND || 'wasm');
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
    const pixels = Float32Array.from(Buffer.from(b64, 'base64'));
    const input = tf.tensor4d(pixels, [1, size, size, 3], 'float32');
    const [detections, classes] = model.execute(input, ['tower_0/detections', 'tower_0/keypoints']);
    const person = tf.tidy(() => tf.squeeze(tf.slice(classes, [0, 0, 0, 0], [1, -1, -1, 1]), [0, 3]));
    outputs[name] = { detections: (await detections.array())[0], person: await person.array() };
    tf.dispose([input, detections, classes, person]);
  }
  process.stdout.write(JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version.tfjs, outputs }));
}

main().catch((err) => { console.error(err); process.exit(1); });

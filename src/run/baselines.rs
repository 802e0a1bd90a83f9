//! Simple predictors fitted on the training split and scored on the same
//! held-out split as the model, so that a model's figure can be read against
//! what needs no learning at all: the majority class for classifiers, the
//! training mean and least squares for regression (for a time series: the
//! last value of each window, and least squares over the window), unigram,
//! bigram and trigram counts for text.

use std::collections::HashMap;

use serde::Serialize;

use super::evaluate::r2_rmse;
use crate::data::{Dataset, Features, Normalizer, Prepared, Targets};

/// One baseline's figure on a held-out split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Baseline {
    /// What predicts (`majority class`, `least squares`, `bigram`).
    pub name: String,
    /// The metric, named as in evaluations (`accuracy`, `r2`, `rmse`,
    /// `bits_per_char`).
    pub metric: &'static str,
    /// Its value.
    pub value: f64,
}

/// Smoothing of the n-gram baselines: add-k with these k for n = 1, 2, 3.
pub const NGRAM_ADD_K: [f64; 3] = [0.5, 0.1, 0.01];

/// The baselines for `held_out`, fitted on `prepared.train`.
pub fn baselines(prepared: &Prepared, held_out: &Dataset) -> Vec<Baseline> {
    let train = &prepared.train;
    if held_out.is_empty() || train.is_empty() {
        return Vec::new();
    }
    match (&train.targets, &held_out.targets) {
        (
            Targets::Classes {
                ids,
                classes,
                per_sample: 1,
            },
            Targets::Classes { ids: test, .. },
        ) => {
            let mut count = vec![0usize; *classes];
            for &i in ids {
                count[i as usize] += 1;
            }
            let majority = (0..*classes).max_by_key(|&c| (count[c], usize::MAX - c));
            let right = test
                .iter()
                .filter(|&&i| Some(i as usize) == majority)
                .count();
            vec![Baseline {
                name: "majority class".into(),
                metric: "accuracy",
                value: right as f64 / test.len() as f64,
            }]
        }
        (Targets::Classes { ids, .. }, Targets::Classes { ids: test, .. }) => {
            let stream = |ds: &Dataset, targets: &[u32]| -> Vec<u32> {
                let Features::F32(x) = &ds.features else {
                    return Vec::new();
                };
                let mut s: Vec<u32> = x.iter().map(|&v| v as u32).collect();
                s.extend(targets.last());
                s
            };
            let (train_text, test_text) = (stream(train, ids), stream(held_out, test));
            let vocab = train.outputs().max(held_out.outputs());
            ["unigram", "bigram", "trigram"]
                .iter()
                .enumerate()
                .map(|(i, name)| Baseline {
                    name: format!("{name} (add-{})", NGRAM_ADD_K[i]),
                    metric: "bits_per_char",
                    value: ngram_bits(&train_text, &test_text, i + 1, NGRAM_ADD_K[i], vocab),
                })
                .collect()
        }
        (Targets::Values { values, dims }, Targets::Values { values: test, .. }) => {
            // Dataset values are in target units (scaling happens on upload).
            let d = *dims;
            let mean: Vec<f32> = (0..d)
                .map(|j| {
                    let col = values.iter().skip(j).step_by(d);
                    (col.map(|&v| v as f64).sum::<f64>() / train.len() as f64) as f32
                })
                .collect();
            let mean_pred: Vec<f32> = (0..held_out.len()).flat_map(|_| mean.clone()).collect();
            let (r2_mean, rmse_mean) = r2_rmse(&mean_pred, test);
            let mut out = vec![
                Baseline {
                    name: "training mean".into(),
                    metric: "r2",
                    value: r2_mean,
                },
                Baseline {
                    name: "training mean".into(),
                    metric: "rmse",
                    value: rmse_mean,
                },
            ];
            // A time series: the last value of the window, and a linear
            // model over the whole window (least squares on its values).
            let windows = train.sample_shape.len() == 2;
            if let (Some(k), Features::F32(x), 1) =
                (prepared.last_value_feature, &held_out.features, d)
            {
                let (w, f) = (held_out.sample_shape[0], held_out.sample_shape[1]);
                let last: Vec<f32> = x
                    .chunks(w * f)
                    .map(|window| window[(w - 1) * f + k])
                    .collect();
                let (r2, rmse) = r2_rmse(&last, test);
                out.push(Baseline {
                    name: "same as last value".into(),
                    metric: "r2",
                    value: r2,
                });
                out.push(Baseline {
                    name: "same as last value".into(),
                    metric: "rmse",
                    value: rmse,
                });
            }
            if let Some(pred) = least_squares(train, held_out, &prepared.normalizer) {
                let (r2, rmse) = r2_rmse(&pred, test);
                let name = if windows {
                    "least squares over the window"
                } else {
                    "least squares"
                };
                out.push(Baseline {
                    name: name.into(),
                    metric: "r2",
                    value: r2,
                });
                out.push(Baseline {
                    name: name.into(),
                    metric: "rmse",
                    value: rmse,
                });
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Bits per symbol of an add-`k` `n`-gram model counted on `train` and
/// scored on `test` (every symbol of `test` after its first `n − 1`, given
/// the `n − 1` before it), over a vocabulary of `vocab` symbols.
pub fn ngram_bits(train: &[u32], test: &[u32], n: usize, k: f64, vocab: usize) -> f64 {
    let mut counts: HashMap<&[u32], f64> = HashMap::new();
    let mut contexts: HashMap<&[u32], f64> = HashMap::new();
    for w in train.windows(n) {
        *counts.entry(w).or_default() += 1.0;
        *contexts.entry(&w[..n - 1]).or_default() += 1.0;
    }
    let v = vocab.max(1) as f64;
    let (mut bits, mut scored) = (0.0, 0usize);
    for w in test.windows(n) {
        let c = counts.get(w).copied().unwrap_or(0.0);
        let ctx = contexts.get(&w[..n - 1]).copied().unwrap_or(0.0);
        bits -= ((c + k) / (ctx + k * v)).log2();
        scored += 1;
    }
    bits / scored.max(1) as f64
}

/// Least squares with an intercept on standardised features (f64 normal
/// equations, a tiny ridge for singular ones); `None` for image data.
fn least_squares(train: &Dataset, test: &Dataset, norm: &Normalizer) -> Option<Vec<f32>> {
    let (Features::F32(x), Features::F32(tx)) = (&train.features, &test.features) else {
        return None;
    };
    let (Targets::Values { values, dims }, f) = (&train.targets, train.sample_len()) else {
        return None;
    };
    let d = f + 1;
    let rows = |x: &[f32]| -> Vec<Vec<f64>> {
        let mut x = x.to_vec();
        norm.apply(&mut x, f);
        x.chunks(f)
            .map(|r| r.iter().map(|&v| v as f64).chain([1.0]).collect())
            .collect()
    };
    let (xs, txs) = (rows(x), rows(tx));
    let mut pred = vec![0.0f32; txs.len() * dims];
    for j in 0..*dims {
        let mut a = vec![vec![0.0f64; d + 1]; d];
        for (r, row) in xs.iter().enumerate() {
            let t = values[r * dims + j] as f64;
            for p in 0..d {
                for q in 0..d {
                    a[p][q] += row[p] * row[q];
                }
                a[p][d] += row[p] * t;
            }
        }
        for (p, row) in a.iter_mut().enumerate() {
            row[p] += 1e-9 * xs.len() as f64;
        }
        // Gaussian elimination with partial pivoting.
        for c in 0..d {
            let p = (c..d).max_by(|&i, &k| a[i][c].abs().total_cmp(&a[k][c].abs()))?;
            a.swap(c, p);
            if a[c][c].abs() < 1e-300 {
                return None;
            }
            for r in 0..d {
                if r != c {
                    let m = a[r][c] / a[c][c];
                    let pivot = a[c].clone();
                    for (x, p) in a[r].iter_mut().zip(&pivot).skip(c) {
                        *x -= m * p;
                    }
                }
            }
        }
        let w: Vec<f64> = (0..d).map(|i| a[i][d] / a[i][i]).collect();
        for (r, row) in txs.iter().enumerate() {
            pred[r * dims + j] = row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() as f32;
        }
    }
    Some(pred)
}

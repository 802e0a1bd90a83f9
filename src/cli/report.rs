//! What a training run shows and leaves behind: progress, one line per
//! epoch, metrics.csv, loss.svg, summary.json and the checkpoints.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use wgtrain::models::Model;
use wgtrain::optim::Optimizer;
use wgtrain::run::checkpoint::{self, ModelMeta, ResumeMeta};
use wgtrain::run::fit::snapshot;
use wgtrain::run::{EpochStats, Evaluation, Hooks, StepProgress, TrainState};
use wgtrain::{Device, Error, Result};

/// The run directory's hooks into the training loop.
pub struct RunHooks<'a, D: Device> {
    dev: &'a D,
    out: PathBuf,
    meta: ModelMeta,
    quiet: bool,
    json: bool,
    bar: Option<ProgressBar>,
    /// Progress bars only on a terminal; plain lines otherwise.
    interactive: bool,
    epochs: usize,
}

impl<'a, D: Device> RunHooks<'a, D> {
    pub fn new(dev: &'a D, out: &Path, meta: ModelMeta, quiet: bool, json: bool) -> Self {
        let epochs = meta.experiment.epochs;
        RunHooks {
            dev,
            out: out.to_path_buf(),
            meta,
            quiet,
            json,
            bar: None,
            interactive: std::io::stderr().is_terminal() && !quiet && !json,
            epochs,
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match (&self.bar, self.json) {
            (Some(b), _) => b.println(line),
            (None, true) => eprintln!("{line}"),
            (None, false) => println!("{line}"),
        }
    }
}

impl<D: Device> Hooks<D> for RunHooks<'_, D> {
    fn on_step(&mut self, p: &StepProgress) {
        if !self.interactive {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(p.steps as u64);
            b.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps  {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b
        });
        if p.step == 1 {
            bar.reset();
            bar.set_length(p.steps as u64);
            bar.set_prefix(format!("{}/{}", p.epoch, self.epochs));
        }
        bar.set_position(p.step as u64);
        if let Some(l) = p.loss {
            bar.set_message(format!(
                "loss {l:.4}  {:.0} samples/s",
                p.samples as f64 / p.elapsed.max(1e-9)
            ));
        }
    }

    fn on_epoch(
        &mut self,
        stats: &EpochStats,
        state: &TrainState,
        improved: bool,
        model: &Model<D>,
        optimizer: &dyn Optimizer<D>,
    ) -> Result<()> {
        let val = stats.val.as_ref().map_or(String::new(), |v| {
            format!("  val loss {:.4}  {}", v.loss, v.headline())
        });
        self.say(&format!(
            "epoch {:>3}/{}  train loss {:.4}{val}  {:.1}s  {:.0} samples/s{}",
            stats.epoch,
            self.epochs,
            stats.train_loss,
            stats.seconds,
            stats.samples_per_sec,
            if improved { "  *" } else { "" }
        ));
        let params = snapshot(self.dev, model)?;
        // The best model first, then the resumable state that names it as
        // best: a crash between the two leaves the state of the epoch before,
        // and resuming from it recomputes this epoch identically.
        if improved {
            checkpoint::save(
                &self.out.join("model.safetensors"),
                &self.meta,
                &params,
                None,
            )?;
        }
        let resume = ResumeMeta {
            state: state.clone(),
            optimizer_steps: optimizer.steps(),
        };
        let opt = optimizer.state(self.dev, &model.params())?;
        checkpoint::save(
            &self.out.join("last.safetensors"),
            &self.meta,
            &params,
            Some((&resume, &opt)),
        )?;
        write_metrics(&self.out.join("metrics.csv"), &state.history)?;
        plot_loss(&self.out.join("loss.svg"), &state.history)?;
        Ok(())
    }
}

/// The headline metric of an evaluation, for the metrics file.
fn metric_value(e: &Evaluation) -> Option<f64> {
    e.accuracy.or(e.r2).or(e.bits_per_char)
}

fn write_metrics(path: &Path, history: &[EpochStats]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::Config(format!("{}: {e}", path.display()));
    w.write_record([
        "epoch",
        "train_loss",
        "val_loss",
        "val_metric",
        "lr",
        "seconds",
        "samples_per_sec",
    ])
    .map_err(io)?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for h in history {
        w.write_record([
            h.epoch.to_string(),
            format!("{}", h.train_loss),
            opt(h.val.as_ref().map(|v| v.loss)),
            opt(h.val.as_ref().and_then(metric_value)),
            format!("{}", h.lr),
            format!("{:.3}", h.seconds),
            format!("{:.1}", h.samples_per_sec),
        ])
        .map_err(io)?;
    }
    let data = w.into_inner().map_err(|e| Error::Config(e.to_string()))?;
    checkpoint::write_atomically(path, &data)
}

fn plot_loss(path: &Path, history: &[EpochStats]) -> Result<()> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        let err =
            |e: &dyn std::fmt::Display| Error::Config(format!("{}: plotting: {e}", path.display()));
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let train: Vec<(f64, f64)> = history
            .iter()
            .map(|h| (h.epoch as f64, h.train_loss))
            .collect();
        let val: Vec<(f64, f64)> = history
            .iter()
            .filter_map(|h| h.val.as_ref().map(|v| (h.epoch as f64, v.loss)))
            .collect();
        let finite = |p: &&(f64, f64)| p.1.is_finite();
        let max = train
            .iter()
            .chain(&val)
            .filter(finite)
            .map(|p| p.1)
            .fold(0.0f64, f64::max);
        let epochs = history.len().max(2) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption("loss per epoch", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..epochs, 0.0..(max * 1.05).max(1e-6))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(train, &BLUE))
            .map_err(|e| err(&e))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if !val.is_empty() {
            chart
                .draw_series(LineSeries::new(val, &RED))
                .map_err(|e| err(&e))?
                .label("validation")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    checkpoint::write_atomically(path, svg.as_bytes())
}

/// An evaluation as the `test` object of the JSON summary.
pub fn evaluation_json(e: &Evaluation) -> Value {
    let mut v = json!({ "loss": e.loss, "samples": e.samples });
    for (k, val) in [
        ("accuracy", e.accuracy),
        ("r2", e.r2),
        ("rmse", e.rmse),
        ("bits_per_char", e.bits_per_char),
    ] {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    }
    v
}

pub fn write_summary(out: &Path, summary: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(summary).map_err(|e| Error::Config(e.to_string()))?;
    checkpoint::write_atomically(&out.join("summary.json"), text.as_bytes())
}

/// A confusion matrix as aligned text: rows are true classes.
pub fn confusion_table(cm: &[Vec<u64>]) -> String {
    let width = cm
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(1)
        .max(3);
    let mut s = format!(
        "confusion (rows: true class, columns: predicted)\n{:>5}",
        ""
    );
    for j in 0..cm.len() {
        s += &format!(" {j:>width$}");
    }
    s.push('\n');
    for (i, row) in cm.iter().enumerate() {
        s += &format!("{i:>5}");
        for v in row {
            s += &format!(" {v:>width$}");
        }
        s.push('\n');
    }
    s
}

//! What a training run shows and leaves behind: progress, one line per
//! epoch, metrics.csv, loss.svg, summary.json and the checkpoints.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use wgtrain::models::Model;
use wgtrain::optim::Optimizer;
use wgtrain::run::checkpoint::{self, ModelMeta, ResumeMeta};
use wgtrain::run::fit::snapshot;
use wgtrain::run::{EpochEnd, EpochStats, Evaluation, Hooks, RunDir, StepProgress, TrainState};
use wgtrain::tensor::HostTensor;
use wgtrain::{Device, Error, Result};

use super::console;

/// The run directory's hooks into the training loop.
///
/// Memory stays flat however long the run: each epoch is appended to
/// metrics.csv and only a bounded, thinned series is kept for the plot.
/// Checkpoints are written when the run ends and otherwise at most every
/// `save_every` seconds; the best parameters (kept by the experiment) go to
/// model.safetensors before the resumable state that names them, so a crash
/// between the two resumes into an identical replay.
pub struct RunHooks<'a, D: Device> {
    dev: &'a D,
    /// The run's directory; `out` is its path.
    rundir: &'a RunDir,
    out: PathBuf,
    meta: ModelMeta,
    quiet: bool,
    json: bool,
    bar: Option<ProgressBar>,
    /// Progress bars only on a terminal; plain lines otherwise.
    interactive: bool,
    epochs: usize,
    save_every: Duration,
    last_save: Instant,
    /// The best epoch whose parameters are in model.safetensors.
    best_saved: Option<usize>,
    /// The epoch last.safetensors holds: what a failure leaves behind.
    pub saved_epoch: Option<usize>,
    plot: LossSeries,
}

impl<'a, D: Device> RunHooks<'a, D> {
    /// Hooks writing into `rundir`. A resumed run (`resumed_at` its epoch)
    /// keeps metrics.csv up to that epoch and the model file it has.
    pub fn new(
        dev: &'a D,
        rundir: &'a RunDir,
        meta: ModelMeta,
        (quiet, json): (bool, bool),
        save_every: Duration,
        resumed_at: Option<(usize, usize)>,
    ) -> Result<Self> {
        // Resolved when the run was set up.
        let epochs = meta.experiment.epochs.unwrap_or_default();
        let out = rundir.path();
        let metrics = out.join("metrics.csv");
        let mut plot = LossSeries {
            metric: match meta.task {
                wgtrain::data::Task::Classification => "accuracy",
                wgtrain::data::Task::Regression => "R²",
                wgtrain::data::Task::Text => "bits per character",
            },
            ..LossSeries::default()
        };
        match resumed_at {
            Some((epoch, _)) => resume_metrics(&metrics, &metrics_header(&meta), epoch, &mut plot)?,
            None => checkpoint::write_atomically(&metrics, metrics_header(&meta).as_bytes())?,
        }
        Ok(RunHooks {
            dev,
            rundir,
            out: out.to_path_buf(),
            meta,
            quiet,
            json,
            bar: None,
            interactive: std::io::stderr().is_terminal() && !quiet && !json,
            epochs,
            save_every,
            last_save: Instant::now(),
            best_saved: resumed_at.map(|(_, best)| best),
            saved_epoch: resumed_at.map(|(epoch, _)| epoch),
            plot,
        })
    }

    /// Clears the progress bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        // Epoch lines go to standard output (a redirected log keeps them),
        // with the progress bar on the terminal's stderr out of their way;
        // under --json, stdout is the JSON's.
        match (&self.bar, self.json) {
            (_, true) => crate::errln!("{line}"),
            (Some(b), false) => b.suspend(|| console::out_lenient(format_args!("{line}\n"))),
            (None, false) => console::out_lenient(format_args!("{line}\n")),
        }
    }

    /// After a failed run: the best parameters go to model.safetensors if
    /// the file does not hold them yet. Returns the best epoch on disk.
    pub fn save_best(&mut self, best: Option<&[HostTensor]>, best_epoch: usize) -> Option<usize> {
        if let (Some(best), false) = (best, self.best_saved == Some(best_epoch)) {
            let saved = check_finite(best, best_epoch).and_then(|_| {
                checkpoint::save(&self.out.join("model.safetensors"), &self.meta, best, None)
            });
            if saved.is_ok() {
                self.best_saved = Some(best_epoch);
            }
        }
        self.best_saved.filter(|&e| e > 0)
    }

    /// Writes the best parameters (if newer than the file) and the
    /// resumable state, refusing non-finite weights.
    fn save(&mut self, end: &EpochEnd<'_, D>) -> Result<()> {
        self.save_state(end.state, end.model, end.optimizer, end.best)
    }

    /// [`RunHooks::save`] from the parts, also inside an epoch (Ctrl-C):
    /// the state then says which step comes next.
    pub fn save_state(
        &mut self,
        state: &TrainState,
        model: &Model<D>,
        optimizer: &dyn Optimizer<D>,
        best: Option<&[HostTensor]>,
    ) -> Result<()> {
        if self.best_saved != Some(state.best_epoch) {
            if let Some(best) = best {
                check_finite(best, state.best_epoch)?;
                checkpoint::save(&self.out.join("model.safetensors"), &self.meta, best, None)?;
                self.best_saved = Some(state.best_epoch);
            }
        }
        let params = snapshot(self.dev, model)?;
        check_finite(&params, state.epoch)?;
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
        self.saved_epoch = Some(state.epoch);
        // A completed epoch is worth more than the run `--overwrite` set
        // aside (a Ctrl-C inside the first is not).
        if state.epoch > 0 {
            self.rundir.replace_previous()?;
        }
        log::info!(
            "saved {} after epoch {} (step {} of the next)",
            self.out.display(),
            state.epoch,
            state.step
        );
        plot_loss(&self.out.join("loss.svg"), &self.plot)?;
        self.last_save = Instant::now();
        Ok(())
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
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} steps, eta {eta}  {msg}",
                )
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

    fn should_stop(&mut self) -> bool {
        super::interrupted()
    }

    fn on_epoch(&mut self, end: &EpochEnd<'_, D>) -> Result<()> {
        let stats = end.stats;
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
            if end.improved { "  *" } else { "" }
        ));
        // The log first: a resumed run drops rows past its checkpoint.
        append_metrics(&self.out.join("metrics.csv"), stats)?;
        self.plot.push(
            stats.epoch,
            stats.train_loss,
            stats.val.as_ref().map(|v| v.loss),
            stats.val.as_ref().and_then(metric_value),
        );
        if end.ending || self.last_save.elapsed() >= self.save_every {
            self.save(end)?;
        }
        Ok(())
    }
}

/// Refuses to save parameters that are not all finite.
fn check_finite(params: &[HostTensor], epoch: usize) -> Result<()> {
    for t in params {
        if let Some(v) = t.values.iter().find(|v| !v.is_finite()) {
            return Err(Error::Config(format!(
                "parameter {} became {v} at epoch {epoch}: not saved (try a lower --lr)",
                t.name
            )));
        }
    }
    Ok(())
}

/// metrics.csv's header line: the validation metric's column is named after
/// the task's metric.
fn metrics_header(meta: &ModelMeta) -> String {
    let metric = match meta.task {
        wgtrain::data::Task::Classification => "val_accuracy",
        wgtrain::data::Task::Regression => "val_r2",
        wgtrain::data::Task::Text => "val_bits_per_char",
    };
    format!("epoch,train_loss,val_loss,{metric},lr,seconds,samples_per_sec\n")
}

/// The headline metric of an evaluation, for the metrics file.
fn metric_value(e: &Evaluation) -> Option<f64> {
    e.accuracy.or(e.r2).or(e.bits_per_char)
}

/// Appends one epoch's row to metrics.csv (no rewrite, no sync: it is a log).
fn append_metrics(path: &Path, h: &EpochStats) -> Result<()> {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let row = format!(
        "{},{},{},{},{},{:.3},{:.1}\n",
        h.epoch,
        h.train_loss,
        opt(h.val.as_ref().map(|v| v.loss)),
        opt(h.val.as_ref().and_then(metric_value)),
        h.lr,
        h.seconds,
        h.samples_per_sec
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(row.as_bytes()).map_err(|e| Error::io(path, e))
}

/// A resumed run's metrics.csv: rows after the checkpoint's epoch (written
/// before a crash) are dropped, and the rest feed the plot.
fn resume_metrics(path: &Path, header: &str, epoch: usize, plot: &mut LossSeries) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut kept = header.to_string();
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let Some(e) = cells.first().and_then(|c| c.parse::<usize>().ok()) else {
            continue;
        };
        if e > epoch {
            break;
        }
        let num = |i: usize| cells.get(i).and_then(|c| c.parse::<f64>().ok());
        if let Some(train) = num(1) {
            plot.push(e, train, num(2), num(3));
        }
        kept += line;
        kept.push('\n');
    }
    checkpoint::write_atomically(path, kept.as_bytes())
}

/// Loss per epoch for the plot, thinned to at most `2 · CAP` points: when
/// full, every other point is dropped and later epochs are sampled half as
/// often.
#[derive(Default)]
struct LossSeries {
    /// (epoch, train loss, validation loss, validation metric).
    points: Vec<(f64, f64, Option<f64>, Option<f64>)>,
    stride: usize,
    /// The validation metric's name (`accuracy`), for its plot.
    metric: &'static str,
}

impl LossSeries {
    const CAP: usize = 1000;

    fn push(&mut self, epoch: usize, train: f64, val: Option<f64>, metric: Option<f64>) {
        let stride = self.stride.max(1);
        if !epoch.is_multiple_of(stride) && epoch != 1 {
            return;
        }
        self.points.push((epoch as f64, train, val, metric));
        if self.points.len() >= 2 * Self::CAP {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride = stride * 2;
        }
    }
}

/// loss.svg (training and validation loss; a log axis when they span more
/// than two decades) and, with validation, metric.svg (its metric per epoch).
fn plot_loss(path: &Path, series: &LossSeries) -> Result<()> {
    let pts = &series.points;
    let train: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
    let val: Vec<(f64, f64)> = pts.iter().filter_map(|p| p.2.map(|v| (p.0, v))).collect();
    let positive: Vec<f64> = train
        .iter()
        .chain(&val)
        .map(|p| p.1)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let (lo, hi) = positive
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
    let log = hi > 100.0 * lo;
    let y = |v: f64| if log { v.log10() } else { v };
    let lines = [
        (
            "train",
            train.iter().map(|&(e, v)| (e, y(v))).collect::<Vec<_>>(),
        ),
        ("validation", val.iter().map(|&(e, v)| (e, y(v))).collect()),
    ];
    let label = if log { "loss (log scale)" } else { "loss" };
    line_chart(path, "loss per epoch", label, &lines, log)?;
    let metric: Vec<(f64, f64)> = pts.iter().filter_map(|p| p.3.map(|v| (p.0, v))).collect();
    if !metric.is_empty() {
        let metric_path = path.with_file_name("metric.svg");
        let lines = [(series.metric, metric)];
        line_chart(
            &metric_path,
            "validation metric per epoch",
            series.metric,
            &lines,
            false,
        )?;
    }
    Ok(())
}

/// One SVG chart of `lines` (name, points) over whole epochs; with `log`,
/// the values are log10 and labelled as powers of ten.
fn line_chart(
    path: &Path,
    caption: &str,
    y_desc: &str,
    lines: &[(&str, Vec<(f64, f64)>)],
    log: bool,
) -> Result<()> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        let err =
            |e: &dyn std::fmt::Display| Error::Config(format!("{}: plotting: {e}", path.display()));
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let all = || lines.iter().flat_map(|l| &l.1).filter(|p| p.1.is_finite());
        let epochs = all().map(|p| p.0).fold(2.0f64, f64::max);
        let (lo, hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.1), h.max(p.1))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let bottom = if log || lo < 0.0 {
            lo - pad
        } else {
            0.0f64.min(lo)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..epochs, bottom..hi + pad)
            .map_err(|e| err(&e))?;
        let x_fmt = |x: &f64| format!("{x:.0}");
        let y_fmt = |v: &f64| {
            if log {
                format!("{:.0e}", 10f64.powf(*v))
            } else {
                format!("{v:.3}")
            }
        };
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            // Whole epochs only: at most one tick per epoch.
            .x_labels((epochs as usize).clamp(2, 10))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .map_err(|e| err(&e))?;
        for ((name, points), color) in lines.iter().zip([BLUE, RED]) {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(points.iter().copied(), &color))
                .map_err(|e| err(&e))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
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

pub fn write_summary(out: &Path, summary: &impl serde::Serialize) -> Result<()> {
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

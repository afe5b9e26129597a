//! `report.html` through the real binary: a two-iteration `ponder train` of the tiny random
//! Llama of ../shared/reference/tiny with an `[eval]` table writes it, `ponder report` rebuilds
//! it, and headless Chromium loads it with no console message and every plot drawn.
//!
//! - every plot is an inline `<svg>` in its `<figure class="plot" id="plot-…">`; the page has no
//!   script and names no `http://` or `https://` resource;
//! - model text is escaped: a `<script>` planted in `eval.json` shows as text;
//! - `ponder report` refuses a directory that is no run, one without metrics yet, and a corrupt
//!   file (naming the file and line); `--out` writes elsewhere.
//!
//! The browser part needs `chromium` (scripts/setup.sh installs it): under CI (`CI=true`) a
//! missing browser fails the test; elsewhere it is skipped with a message.

use std::path::{Path, PathBuf};
use std::process::Command;

use ponder_e2e::{Outcome, plugin, ponder, ponder_binary, root, tpo_plugin_tables};
use ponder_test_support::tiny_model_dir;

/// The ids of the report's plots (host/pipeline/src/report/html.rs), `plot-eval` included: the
/// run has an `[eval]` table.
const PLOTS: [&str; 9] = [
    "plot-scores",
    "plot-eval",
    "plot-response-length",
    "plot-thought-length",
    "plot-parse-failures",
    "plot-dpo",
    "plot-dpo-steps-loss",
    "plot-dpo-steps-margin",
    "plot-timings",
];

/// A two-iteration run with `[eval]`, trained once for all the tests of this file.
fn trained_run() -> &'static Path {
    static RUN: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, run) = RUN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = dir.path().join("run");
        let manifest = dir.path().join("tpo.toml");
        let text = format!(
            r#"
[run]
out = "{out}"
seed = 7
iterations = 2

[model]
path = "{model}"

[data]
train = "{train}"
validation = "{validation}"
validation_size = 2
per_iteration = 4

[sample]
k = 4
max_new_tokens = 40
prefill = true
thought_budget = 16
batch_prompts = 2

[dpo]
beta = 0.1
lr = 1e-3
epochs = 2
batch_size = 2
{plugins}

[eval]
data = "{eval}"
limit = 4
judge = "{judge}"
constraints_judge = "{judge}"
max_new_tokens = 40
"#,
            out = run.display(),
            model = tiny_model_dir("llama").display(),
            train = root().join("data/train.jsonl").display(),
            validation = root().join("data/eval.jsonl").display(),
            eval = root().join("data/verifiable/eval.jsonl").display(),
            judge = plugin("judge-constraints").display(),
            plugins = tpo_plugin_tables(),
        );
        std::fs::write(&manifest, text).expect("write manifest");
        let output = Command::new(ponder_binary())
            .arg("train")
            .arg(&manifest)
            .arg("--no-progress")
            .current_dir(root())
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .output()
            .expect("running ponder train");
        assert!(
            output.status.success(),
            "ponder train failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        (dir, run)
    });
    run
}

/// Copies the run's files (not its models) into `to`, for tests that damage them.
fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_run(&path, &target);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "json" || ext == "jsonl")
        {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn report(args: &[&str]) -> Outcome {
    let cache = tempfile::tempdir().expect("temp dir");
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    ponder(&all, cache.path())
}

fn assert_fails_with(outcome: &Outcome, needles: &[&str]) {
    assert!(
        !outcome.success,
        "ponder report succeeded:\n{}",
        outcome.stdout
    );
    for needle in needles {
        assert!(
            outcome.stderr.contains(needle),
            "the error does not mention {needle:?}:\n{}",
            outcome.stderr
        );
    }
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
}

/// Where `chromium` is; `None` outside CI when it is not installed (the test then skips), a
/// failure under CI.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
        assert!(
            !ci,
            "chromium is not installed: scripts/setup.sh installs it (apt-get install chromium)"
        );
        eprintln!(
            "skipped: chromium is not installed (scripts/setup.sh installs it; under CI this fails)"
        );
    }
    found
}

/// What headless Chromium made of a page: the DOM after loading, and its console messages.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

fn load(chromium: &Path, page: &Path, screenshot: Option<&Path>) -> Loaded {
    let url = format!("file://{}", page.display());
    let profile = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(png) => command.arg(format!("--screenshot={}", png.display())),
        None => command.arg("--dump-dom"),
    };
    let output = command.arg(&url).output().expect("running chromium");
    assert!(
        output.status.success(),
        "chromium failed on {url}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    Loaded {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        // Chromium logs console output (console.* and uncaught errors) as `…:CONSOLE…] "…"`.
        console: stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE") || line.contains("Uncaught"))
            .map(str::to_string)
            .collect(),
    }
}

#[test]
fn train_writes_the_report_and_chromium_shows_every_plot() {
    let run = trained_run();
    let page = run.join("report.html");
    assert!(page.is_file(), "ponder train wrote no report.html");
    let html = std::fs::read_to_string(&page).expect("report.html");
    assert!(!html.contains("<script"), "the page has a script");
    for attribute in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(http",
    ] {
        assert!(
            !html.contains(attribute),
            "the page loads a remote resource ({attribute})"
        );
    }
    for id in PLOTS {
        let figure = format!("<figure class=\"plot\" id=\"{id}\">\n<svg");
        assert!(html.contains(&figure), "{id} is missing");
    }
    assert!(html.contains("id=\"samples-eval\""), "no sample table");

    let Some(chromium) = chromium() else {
        return;
    };
    // The check can fail: a page with a console error and an uncaught exception is caught.
    let scratch = tempfile::tempdir().expect("temp dir");
    let broken = scratch.path().join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><html><body><script>console.error('boom'); missing();</script></body></html>",
    )
    .expect("write");
    let loaded = load(&chromium, &broken, None);
    assert_eq!(loaded.console.len(), 2, "{:?}", loaded.console);

    let loaded = load(&chromium, &page, None);
    assert!(loaded.console.is_empty(), "console: {:?}", loaded.console);
    for id in PLOTS {
        let at = loaded
            .dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} is not in the DOM"));
        let figure = &loaded.dom[at..];
        let end = figure.find("</figure>").expect("the figure ends");
        let figure = &figure[..end];
        assert!(figure.contains("<svg"), "{id} has no svg");
        // Every line chart marks its values with points; the timings are bars (rectangles
        // besides the background).
        let drawn = if id == "plot-timings" {
            figure.matches("<rect").count() > 2
        } else {
            figure.contains("<circle")
        };
        assert!(drawn, "{id} draws nothing");
    }
    let png = scratch.path().join("report.png");
    let shot = load(&chromium, &page, Some(&png));
    assert!(shot.console.is_empty(), "console: {:?}", shot.console);
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "the screenshot is {size} bytes");
}

#[test]
fn ponder_report_rebuilds_it_escaping_model_text() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let run = scratch.path().join("run");
    copy_run(trained_run(), &run);
    // Model outputs are untrusted: plant markup in one.
    let eval_file = run.join("iter-2/eval.json");
    let mut eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&eval_file).expect("eval.json"))
            .expect("JSON");
    eval["per_instruction"][0]["outputs"][0]["response"] =
        "<script>document.title='owned'</script><img src=x onerror=alert(1)>".into();
    std::fs::write(&eval_file, serde_json::to_vec(&eval).expect("JSON")).expect("write");

    let outcome = report(&[run.to_str().expect("UTF-8")]);
    assert!(outcome.success, "{}", outcome.stderr);
    let page = run.join("report.html");
    assert_eq!(outcome.stdout.trim(), page.display().to_string());
    let html = std::fs::read_to_string(&page).expect("report.html");
    assert!(!html.contains("<script"), "the planted script is live");
    assert!(!html.contains("<img"), "the planted image is live");
    assert!(
        html.contains("&lt;script&gt;document.title="),
        "the text is not shown"
    );

    let elsewhere = scratch.path().join("elsewhere.html");
    let outcome = report(&[
        run.to_str().expect("UTF-8"),
        "--out",
        elsewhere.to_str().expect("UTF-8"),
    ]);
    assert!(outcome.success, "{}", outcome.stderr);
    assert!(elsewhere.is_file());

    if let Some(chromium) = chromium() {
        let loaded = load(&chromium, &page, None);
        assert!(loaded.console.is_empty(), "console: {:?}", loaded.console);
        assert!(!loaded.dom.contains("<title>owned"), "the script ran");
    }
}

#[test]
fn ponder_report_names_what_is_wrong() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let empty = scratch.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert_fails_with(
        &report(&[empty.to_str().expect("UTF-8")]),
        &["not a run directory", "run.json"],
    );

    // A run that has not finished a phase yet.
    let fresh = scratch.path().join("fresh");
    std::fs::create_dir_all(fresh.join("iter-1")).expect("mkdir");
    std::fs::copy(trained_run().join("run.json"), fresh.join("run.json")).expect("copy");
    assert_fails_with(
        &report(&[fresh.to_str().expect("UTF-8")]),
        &["no metrics yet"],
    );

    // A corrupt line is named by file and line.
    let corrupt = scratch.path().join("corrupt");
    copy_run(trained_run(), &corrupt);
    let judgments = corrupt.join("iter-1/judgments.jsonl");
    let text = std::fs::read_to_string(&judgments).expect("judgments");
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"id\": 3";
    std::fs::write(&judgments, lines.join("\n") + "\n").expect("write");
    assert_fails_with(
        &report(&[corrupt.to_str().expect("UTF-8")]),
        &["judgments.jsonl:2"],
    );

    // An iteration in progress: its finished phases are reported, the rest is missing.
    let partial = scratch.path().join("partial");
    copy_run(trained_run(), &partial);
    for file in [
        "iter-2/pairs.jsonl",
        "iter-2/eval.json",
        "iter-2/dpo/metrics.jsonl",
    ] {
        std::fs::remove_file(partial.join(file)).expect("remove");
    }
    std::fs::remove_dir_all(partial.join("iter-2/model")).expect("remove");
    let outcome = report(&[partial.to_str().expect("UTF-8")]);
    assert!(outcome.success, "{}", outcome.stderr);
    let html = std::fs::read_to_string(partial.join("report.html")).expect("report.html");
    assert!(
        html.contains("iteration 2 is at its select phase"),
        "{html}"
    );
    for id in PLOTS {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} is missing");
    }
}

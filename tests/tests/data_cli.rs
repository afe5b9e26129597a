//! `ponder data`: the built-in instruction sets through the real binary, and `data check`.

use ponder_e2e::{ponder, root};

#[test]
fn verifiable_splits_regenerate_the_committed_files() {
    let cache = tempfile::tempdir().expect("cache");
    let out = tempfile::tempdir().expect("out");
    let dir = out.path().to_str().expect("UTF-8");
    let outcome = ponder(&["data", "verifiable", "--splits", dir], cache.path());
    assert!(outcome.success, "{outcome:?}");
    for split in ["train", "validation", "eval"] {
        let file = format!("{split}.jsonl");
        let fresh = std::fs::read(out.path().join(&file)).expect("written split");
        let committed = std::fs::read(root().join("data/verifiable").join(&file)).expect("split");
        assert!(
            fresh == committed,
            "data/verifiable/{file} differs from a fresh generation"
        );
    }
}

#[test]
fn check_counts_rows_and_names_the_bad_line() {
    let cache = tempfile::tempdir().expect("cache");
    let good = ponder(
        &["data", "check", "data/verifiable/eval.jsonl"],
        cache.path(),
    );
    assert!(good.success, "{good:?}");
    assert!(good.stdout.contains("200 instructions"), "{}", good.stdout);

    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"prompt\": \"Hi.\"}\n{\"id\": \"b\"}\n",
    )
    .expect("write");
    let outcome = ponder(
        &["data", "check", bad.to_str().expect("UTF-8")],
        cache.path(),
    );
    assert!(!outcome.success);
    assert!(
        outcome.stderr.contains("bad.jsonl: line 2"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
}

//! Hostile judge for the runtime's tests: recurses without bound.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

/// Recursion without end. The frame holds only scalars, so it lives on the wasm call stack (not
/// the shadow stack in linear memory), and `black_box` on the result keeps LLVM from turning the
/// recursion into a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth + 1)) ^ depth
}

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    Ok(vec![Some(recurse(0) as f64)])
}

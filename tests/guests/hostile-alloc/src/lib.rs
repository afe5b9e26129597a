//! Hostile judge for the runtime's tests: allocates 1 GiB, past any sensible memory cap.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let block = vec![1u8; 1 << 30];
    std::hint::black_box(&block);
    Ok(vec![Some(block.len() as f64)])
}

//! Pinning the calling thread to one CPU, refusing a CPU it may not run on
//! with an error instead of the abort `core_affinity` gives for a number
//! past what a CPU set holds.

/// The CPUs this process may run on.
pub fn available_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Pins the calling thread to `cpu`. Errs, pinning nothing, when `cpu` is
/// not one of [`available_cpus`] or the kernel refuses.
pub fn pin_current_thread(cpu: usize) -> Result<(), String> {
    let available = available_cpus();
    if !available.contains(&cpu) {
        return Err(format!(
            "CPU {cpu} is not one this process may run on ({available:?})"
        ));
    }
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        return Err(format!("cannot pin to CPU {cpu}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_past_any_cpu_set_is_refused_not_aborted() {
        let err = pin_current_thread(1 << 20).unwrap_err();
        assert!(err.starts_with("CPU 1048576 is not one"), "{err}");
    }

    #[test]
    fn an_available_cpu_is_pinned() {
        let cpu = available_cpus()[0];
        std::thread::spawn(move || pin_current_thread(cpu))
            .join()
            .unwrap()
            .unwrap();
    }
}

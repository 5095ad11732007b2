//! Synthetic EEG/LFP with ground truth, deterministic from a seed.

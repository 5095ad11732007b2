//! Pure numeric stages: filter design, SOS cascades, envelopes, running statistics.

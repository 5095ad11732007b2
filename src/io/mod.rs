//! Everything that touches the operating system: file formats and session output.

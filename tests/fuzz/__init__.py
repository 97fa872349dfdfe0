"""Property-based fuzzing of the job's input path (docs/robustness.md)."""

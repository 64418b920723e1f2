"""Demo tasks: data generators, models and training loops for learned layers."""

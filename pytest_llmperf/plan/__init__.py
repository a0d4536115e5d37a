"""Stage 1, planning: model architectures, platforms, rules and the launch plan (pure)."""

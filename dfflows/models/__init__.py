"""The DiffFlow and its baselines (`build` makes one from a config; `interface` types them)."""

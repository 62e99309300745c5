"""Graph -> Graph optimization passes, run in the order of `pipeline.PASSES`."""

"""Where rays come from: camera rays, pixel batches (random, label-comprehensive, key frames,
cross-view) and the sphere cloud that guides rays and samples to the surface."""

"""Loss functions (pure, vectorised): reconstruction, geometry, supervised segmentation, clustering, contrastive."""

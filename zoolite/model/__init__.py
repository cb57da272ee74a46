"""The model stage: backbones, training, the frozen backbone's features and "none of these"."""

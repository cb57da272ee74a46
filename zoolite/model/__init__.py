"""The model stage: backbones, training, the frozen backbone's features, "none of these" with the integer modes'
calibration sample, and the suspect labels found from the features."""

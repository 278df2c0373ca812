"""meterline.producers."""

"""meterline.stream."""

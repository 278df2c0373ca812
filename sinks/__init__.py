"""meterline.sinks."""

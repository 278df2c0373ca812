"""meterline.alerts."""

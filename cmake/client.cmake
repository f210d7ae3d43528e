# The client side: notmod get's cache and notmod check's probes, over libcurl.

"""The ``asrpro`` command line: serve, call, transcribe, models, devices, record, schema."""

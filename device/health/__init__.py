"""Health of the recorder (Art. 23): battery, storage, clock, temperature, camera and mic."""

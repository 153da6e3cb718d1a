"""The engine: dispatch and slots (dispatch), running one job (execute, runner), leases and
recovery (leases, reaper), the event fan-out (events), its status report (status), and the
process around it (process: lock, loop, signals; daemon: --detach)."""

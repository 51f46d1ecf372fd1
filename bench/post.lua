-- wrk script: POST the alert body kbridge sends (file named by BENCH_BODY).
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "bench-0-0"

-- wrk script: one single-subscriber POST /predict, for a C load generator without Python client overhead.
--   wrk -t1 -c1 -d15s --latency -s src/sendtime/experiments/wrk_predict.lua http://127.0.0.1:3000/predict
-- Set SENDTIME_WRK_EMAIL to an address the champion knows (any address works: unknown ones get priors).
local email = os.getenv("SENDTIME_WRK_EMAIL") or "ana@example.com"
wrk.method = "POST"
wrk.body = '{"subscribers": [{"email": "' .. email .. '"}], ' ..
  '"window": {"start": "2026-11-24T05:00:00Z", "end": "2026-11-25T05:00:00Z"}}'
wrk.headers["Content-Type"] = "application/json"

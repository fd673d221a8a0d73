-- wrk script: client-credentials grants with client_secret_basic.
-- The Authorization header is set by tokens.sh through BASIC_AUTH.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC_AUTH")

local codes = {}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

done = function(summary, latency, requests)
  local bad = 0
  for status, n in pairs(codes) do
    if status ~= 200 then bad = bad + n end
  end
  io.write(string.format("token-wrk requests=%d non200=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, bad, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

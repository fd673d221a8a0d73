-- wrk script for bench/scim.sh: GET requests to the SCIM door with the
-- SCIM token from SCIM_TOKEN. With EMAILS_FILE set, each request is the
-- lookup an identity provider makes before a create, for the next address
-- of the file (`filter=emails.value eq "..."`), and a response without
-- exactly one User counts as a miss; otherwise every request is SCIM_PATH.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SCIM_TOKEN")
wrk.headers["Accept"] = "application/scim+json"

local emails = {}
local file = os.getenv("EMAILS_FILE")
if file and file ~= "" then
  for line in io.lines(file) do
    if line ~= "" then emails[#emails + 1] = line end
  end
end
local path = os.getenv("SCIM_PATH") or "/scim/v2/Users"

local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local n = 0
request = function()
  if #emails == 0 then
    return wrk.format("GET", path)
  end
  n = n + 1
  local email = emails[(n % #emails) + 1]
  return wrk.format("GET", "/scim/v2/Users?filter=" .. encode('emails.value eq "' .. email .. '"'))
end

-- Each wrk thread counts in its own Lua state; `done` sums them.
local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

non200, misses = 0, 0
response = function(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  elseif #emails > 0 and not body:find('"totalResults":1[,}]') then
    misses = misses + 1
  end
end

done = function(summary, latency, requests)
  local bad, missed = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
    missed = missed + t:get("misses")
  end
  io.write(string.format("scim-wrk requests=%d non200=%d misses=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, bad, missed, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

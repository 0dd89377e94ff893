-- wrk script: newcomers who come back. Each request is a join (GET /checkout without a cookie),
-- or, when a join just handed out a place, that place coming back once (GET /_usher/status with
-- its cookie), which is what writes it to the line: usher stores a place only when its holder
-- returns, as a real page does at once. Used by the benches that fill a queue.
local places = {}

request = function()
  local place = table.remove(places)
  if place then
    return wrk.format("GET", "/_usher/status", { ["Cookie"] = place })
  end
  return wrk.format("GET", "/checkout")
end

response = function(status, headers, body)
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  if set then
    table.insert(places, set:match("^([^;]+)"))
  end
end

-- wrk script for the connection-churn case: a new connection every N requests
-- (default 10).
-- Usage: wrk -t1 -c64 -s bench/churn.lua http://127.0.0.1:PORT/plaintext -- 10
--
-- Every N-th request this wrk thread sends carries `Connection: close`. The
-- server answers it with `Connection: close` and closes; wrk 4.1 sees that the
-- response is not keep-alive (http_should_keep_alive) and reconnects that
-- connection slot (reconnect_socket). A server that closes WITHOUT saying so
-- shows up as wrk "read" socket errors instead.
--
-- wrk's request() callback is per thread, not per connection (there is no
-- connection handle in its Lua API), so the count is over the thread's
-- requests: exactly 1 request in N closes its connection, i.e. N requests per
-- connection on average; how they spread over the 64 slots depends on the
-- event loop. run.sh checks the real ratio with the kernel's TCP PassiveOpens
-- counter (the "req/conn" column).
local every = 10
local n = 0
local keep, close

init = function(args)
  every = tonumber(args[1]) or 10
  keep = wrk.format()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Connection"] = "close"
  close = wrk.format(nil, nil, h)
end

request = function()
  n = n + 1
  if n % every == 0 then
    return close
  end
  return keep
end

-- Shared by the health checks of the three kinds (prepended to each by `python -m mlcycle.localdev.argocd`).
-- Argo CD runs each script with the live object in `obj` and reads the returned {status, message}.
local function condition(obj, type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

-- `phases` maps each status.phase of the kind to an Argo CD health status.
local function health(obj, phases)
  if obj.status == nil or obj.status.phase == nil then
    return {status = "Progressing", message = "Waiting for the mlcycle operator"}
  end
  local generation = obj.metadata.generation
  local observed = obj.status.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    return {status = "Progressing", message = "Waiting for the operator to observe generation " .. generation}
  end
  local ready = condition(obj, "Ready")
  local message = obj.status.message
  if (message == nil or message == "") and ready ~= nil then
    message = ready.message
  end
  if message == nil or message == "" then
    message = obj.status.phase
  end
  -- A reconcile that keeps failing (retried by the operator) says what failed: in Synced=False, or as the
  -- reason ReconcileError of Reconciling=True.
  local synced = condition(obj, "Synced")
  if synced ~= nil and synced.status == "False" then
    return {status = "Degraded", message = synced.message}
  end
  local reconciling = condition(obj, "Reconciling")
  if reconciling ~= nil and reconciling.status == "True" and reconciling.reason == "ReconcileError" then
    return {status = "Degraded", message = reconciling.message}
  end
  return {status = phases[obj.status.phase] or "Unknown", message = message}
end

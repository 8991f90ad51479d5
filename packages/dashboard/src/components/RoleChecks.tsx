/** The roles every OnePipe app has (docs/auth.md); an app may declare more. */
export const ROLES = ['viewer', 'operator', 'admin']

/**
 * Roles as checkboxes, one `${testId}-${role}` each. `options` beyond the
 * built-in three keep an app's own roles on screen, so saving does not drop them.
 */
export function RoleChecks({ legend, value, onChange, testId, options = ROLES, hideLegend = false }: { legend: string; value: string[]; onChange: (roles: string[]) => void; testId: string; options?: string[]; hideLegend?: boolean }) {
  const toggle = (r: string) => onChange(value.includes(r) ? value.filter((x) => x !== r) : [...value, r])
  return (
    <fieldset className="text-sm">
      <legend className={hideLegend ? 'sr-only' : 'mb-1 font-medium text-gray-800'}>{legend}</legend>
      <div className="flex flex-wrap gap-3">
        {options.map((r) => (
          <label key={r} className="flex items-center gap-1">
            <input type="checkbox" className="h-4 w-4" checked={value.includes(r)} onChange={() => toggle(r)} data-testid={`${testId}-${r}`} />
            {r}
          </label>
        ))}
      </div>
    </fieldset>
  )
}

// What a `$regex` may be before PostgreSQL sees it. PostgreSQL's engine
// (Spencer's, DFA-based) does not backtrack, so `(a+)+$` is fast. Two things
// make it slow or huge: back-references, which switch it to backtracking
// (`(.+)(.+)\2\1$` runs for minutes on a 1 KB string), and nested bounded
// repetition: `(a{1,200}){1,200}` compiles to tens of thousands of states.
// On the server a statement timeout ends such a query; the embedded engine
// honours no timeout, and there a pattern that large fails without an error
// and can leave the engine unusable. So, the same on both: back-references
// and the embedded options that switch to another syntax are refused, and
// the size is bounded up front (the bounds of nested groups multiply, those
// of a sequence add up).

/** The longest `$regex`, in characters. */
export const MAX_REGEX_LENGTH = 256

/** The largest repetition weight a pattern may have (see {@link regexProblem}). */
export const MAX_REGEX_WEIGHT = 2000

/** PostgreSQL's own limit on a `{m,n}` bound. */
const MAX_BOUND = 255

interface Scan {
  s: string
  i: number
  problem: string | undefined
}

/** Skips a bracket expression starting at `[`, with its `[:class:]`, `[.x.]`, `[=x=]` parts. */
function skipBracket(c: Scan): void {
  c.i++
  if (c.s[c.i] === '^') c.i++
  if (c.s[c.i] === ']') c.i++
  while (c.i < c.s.length && c.s[c.i] !== ']') {
    const open = c.s[c.i] === '[' ? c.s[c.i + 1] : undefined
    if (open === ':' || open === '.' || open === '=') {
      const end = c.s.indexOf(`${open}]`, c.i + 2)
      c.i = end < 0 ? c.s.length : end + 2
    } else {
      c.i += c.s[c.i] === '\\' ? 2 : 1
    }
  }
  c.i++
}

/** Reads a quantifier at the cursor (if any) and returns how many times it repeats its atom at most (1 for `*`, `+`, `?`). */
function quantifier(c: Scan): number {
  const ch = c.s[c.i]
  let times = 1
  if (ch === '*' || ch === '+' || ch === '?') {
    c.i++
  } else if (ch === '{') {
    const m = /^\{(\d{1,6})(,(\d{0,6}))?\}/.exec(c.s.slice(c.i))
    if (!m) return 1
    const bound = Math.max(Number(m[1]), m[3] ? Number(m[3]) : 0)
    if (bound > MAX_BOUND) c.problem ??= `a repetition bound is at most ${MAX_BOUND}`
    times = Math.max(1, bound)
    c.i += m[0].length
  } else {
    return 1
  }
  if (c.s[c.i] === '?') c.i++
  return times
}

/** The weight of a sequence up to `)` or the end: each atom's weight times its repetitions, summed. */
function sequence(c: Scan, depth: number): number {
  let weight = 0
  while (c.i < c.s.length && c.s[c.i] !== ')' && c.problem === undefined) {
    let atom = 1
    const ch = c.s[c.i]
    if (ch === '(') {
      if (depth >= 32) {
        c.problem = 'groups nest at most 32 deep'
        return weight
      }
      c.i++
      // (?:…), (?=…), (?!…), (?<=…), (?<!…): only the body counts.
      if (c.s[c.i] === '?') c.i += /^\?(<[=!]|[:=!])/.exec(c.s.slice(c.i))?.[0].length ?? 1
      atom = Math.max(1, sequence(c, depth + 1))
      c.i++
    } else if (ch === '[') {
      skipBracket(c)
    } else if (ch === '\\') {
      if (/[1-9]/.test(c.s[c.i + 1] ?? '')) c.problem ??= 'back-references (\\1 to \\9) are not allowed: they make the engine backtrack, which can take exponential time'
      c.i += 2
    } else {
      c.i++
    }
    weight += atom * quantifier(c)
    if (weight > MAX_REGEX_WEIGHT) c.problem ??= `its repetitions are too large: nested bounds multiply (a{1,100} inside {1,100} is 10,000) and the total may be at most ${MAX_REGEX_WEIGHT}`
  }
  return weight
}

/**
 * The reason a `$regex` pattern is refused before it reaches PostgreSQL, or
 * undefined when it may be sent: longer than 256 characters, a
 * back-reference (`\1`), leading options other than c, i, m, n, p, s, t, w
 * (b, e and q switch to another syntax, x to expanded syntax), a bound
 * above 255, or a repetition weight above 2,000 (a{5} weighs 5,
 * (ab){3}c{2} 8, (a{10}){10} 100). Syntax errors are left to PostgreSQL,
 * whose message is passed on.
 */
export function regexProblem(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) return `must be at most ${MAX_REGEX_LENGTH} characters (got ${pattern.length})`
  // ***= makes the rest a literal string: nothing repeats.
  if (pattern.startsWith('***=')) return undefined
  let s = pattern.startsWith('***:') ? pattern.slice(4) : pattern
  const options = /^\(\?([a-z]*)\)/.exec(s)
  if (options) {
    // Another syntax would read groups and bounds differently from the scan below.
    if (/[beqx]/.test(options[1] ?? '')) return 'the options b, e, q and x (other regex syntaxes) are not allowed; use c, i, m, n, p, s, t or w'
    s = s.slice(options[0].length)
  }
  const c: Scan = { s, i: 0, problem: undefined }
  while (c.i < c.s.length && c.problem === undefined) {
    sequence(c, 0)
    // A stray `)` is PostgreSQL's to report; keep measuring after it.
    c.i++
  }
  return c.problem
}

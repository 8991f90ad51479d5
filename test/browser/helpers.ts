// The dashboard in a real browser: Debian's chromium driven by playwright-core,
// axe-core injected into each page, a screenshot per test under
// test/tmp/browser/ (CI keeps it as an artifact).
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { expect } from 'vitest'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const SHOTS = join(process.cwd(), 'test/tmp/browser')

/**
 * Launches headless chromium. A missing browser fails the run with how to
 * install it (`.ci/run` does, with apt-get): never a silent skip.
 */
export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`No chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
  mkdirSync(SHOTS, { recursive: true })
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
}


/**
 * A fresh browser profile in a laptop's window. `bypassCSP` lets the test
 * inject axe-core into pages whose Content-Security-Policy (rightly) refuses
 * inline scripts; the policy itself is checked on the served headers in the
 * API test.
 */
export function newContext(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 } })
}

interface Scrolled {
  scrollWidth: number
  clientWidth: number
  getAttribute(name: string): string | null
}

/** Nothing on the page scrolls sideways in that window: neither the page nor a table's scroll box. */
export async function expectNoSidewaysScroll(page: Page, what: string): Promise<void> {
  const wide = await page.evaluate(() => {
    const doc = (globalThis as unknown as { document: { documentElement: Scrolled; querySelectorAll(s: string): Iterable<Scrolled> } }).document
    const out: string[] = []
    if (doc.documentElement.scrollWidth > doc.documentElement.clientWidth) out.push(`the page (${doc.documentElement.scrollWidth} px)`)
    for (const el of doc.querySelectorAll('[role="region"]')) if (el.scrollWidth > el.clientWidth + 1) out.push(`${el.getAttribute('aria-label')} (${el.scrollWidth} > ${el.clientWidth} px)`)
    return out
  })
  expect(wide, `${what}: wider than the window`).toEqual([])
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

interface AxeViolation {
  id: string
  impact: string | null
  help: string
  nodes: { target: unknown[] }[]
}

/** Runs axe-core on the page as it is: no serious or critical violation. */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  await page.addScriptTag({ content: axeSource })
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(o: unknown): Promise<{ violations: AxeViolation[] }> } }).axe
    const r = await axe.run({ resultTypes: ['violations'] })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }))
  })
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  expect(bad, `${what}: ${JSON.stringify(bad, null, 1)}`).toEqual([])
}

/** Logs in through the page's form. */
export async function login(page: Page, base: string, email: string, password: string): Promise<void> {
  await page.goto(`${base}/__onepipe/dashboard/login`)
  await page.getByTestId('login-email').fill(email)
  await page.getByTestId('login-password').fill(password)
  await page.getByTestId('login-submit').click()
  await page.getByTestId('current-user').waitFor({ timeout: 30_000 })
}

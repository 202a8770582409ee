// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core.
//
// Run by coordinator/tests/browser.rs against a private redis-server, coordinator, worker and
// `weir serve`, with:
//   WEIR_URL          the dashboard, e.g. http://127.0.0.1:38080/
//   WEIR_TOKEN        an API token whose user is the approval task's assignee
//   WEIR_WORKFLOW     the approval workflow's name (a human step `approve` with a form
//                     {amount: number, minimum 1, multipleOf 5, required; category: enum,
//                     required; approved: boolean; receipt: {number: string}; tags: [string];
//                     comment: string}, then a gateway and machine steps)
//   WEIR_TENANT_TOKEN optional: a token bound to another tenant, which must see none of
//                     the instances above and no admin page
//   WEIR_CHOICE_WORKFLOW  optional: a workflow whose human step `approve` (for WEIR_TOKEN's
//                     user) has the title "Approve {employee}'s expense of {amount}", shows
//                     [employee, amount, receipt.number] and requires a boolean `approved`
//   WEIR_OUTCOME_WORKFLOW optional: the same form decided by outcome buttons approve / reject,
//                     with no `show`
//   WEIR_ORDER_WORKFLOW   optional: deploy/examples/order_payment.yaml's workflow (an event
//                     step `wait_payment` waiting for `payment_received` keyed by `order_id`)
//   WEIR_SCREENSHOTS  where to save the screenshots (created; default target/browser-screenshots)
//   WEIR_CHROMIUM     the browser (default /usr/bin/chromium)
// The user's path: sign in, the home page, the definition's diagram, start an instance from
// the start form, the inbox (the new task appears live), the task's form submitted with bad
// data twice (a browser check, then a server check: each error shows next to the field) and
// once with good data, then the instance page until it shows `completed`. Every wait has a
// deadline, the whole run one too; any failed expectation, uncaught page error or server
// error (5xx), or serious accessibility violation (axe-core, WCAG 2 AA) exits non-zero.

import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const URL_ = process.env.WEIR_URL;
const TOKEN = process.env.WEIR_TOKEN;
const TENANT_TOKEN = process.env.WEIR_TENANT_TOKEN || '';
const PEER_TOKEN = process.env.WEIR_PEER_TOKEN || '';
const USER = process.env.WEIR_USER || '';
const WORKFLOW = process.env.WEIR_WORKFLOW || 'approval';
const CHOICE_WORKFLOW = process.env.WEIR_CHOICE_WORKFLOW || '';
const OUTCOME_WORKFLOW = process.env.WEIR_OUTCOME_WORKFLOW || '';
const ORDER_WORKFLOW = process.env.WEIR_ORDER_WORKFLOW || '';
const SHOTS = resolve(process.env.WEIR_SCREENSHOTS || 'target/browser-screenshots');
const CHROMIUM = process.env.WEIR_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 20_000; // one expectation
const LIVE_TIMEOUT = 45_000; // the engine's work: a task opening, an instance completing
const TOTAL_TIMEOUT = 120_000; // the whole run

if (!URL_ || !TOKEN) {
  console.error('run.mjs: set WEIR_URL and WEIR_TOKEN (see the header of this file)');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

const overall = setTimeout(() => {
  console.error(`run.mjs: FAILED: the whole run took longer than ${TOTAL_TIMEOUT / 1000}s`);
  process.exit(3);
}, TOTAL_TIMEOUT);

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const problems = [];

function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

let browser;
let page;
let shot = 0;
async function screenshot(name) {
  shot += 1;
  const file = join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
  await audit(name);
}

// Every page screenshotted is also checked with axe-core (WCAG 2 A and AA rules: labels,
// contrast, names, ARIA): a serious or critical violation fails the run. axe is evaluated
// through the DevTools protocol, so the page's Content-Security-Policy stays on.
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const accessibility = [];
async function audit(name) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  for (const v of found) {
    const line = `${name}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(', ')}`;
    if (v.impact === 'serious' || v.impact === 'critical') accessibility.push(line);
    else log(`accessibility note: ${line}`);
  }
}

async function main() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
    timeout: STEP_TIMEOUT,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  context.setDefaultTimeout(STEP_TIMEOUT);
  page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`uncaught page error: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 500) problems.push(`server error ${r.status()} for ${r.request().method()} ${r.url()}`);
  });

  // 1. sign in
  await page.goto(URL_);
  await page.getByLabel('API token').waitFor();
  await screenshot('sign-in');
  expect(!(await page.locator('#nav').isVisible()), 'the navigation is hidden before signing in');
  await page.getByLabel('API token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('This token is not valid.').waitFor();
  log('a wrong token is refused');
  await page.getByLabel('API token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await page.locator('.tiles').waitFor();
  await page.locator('#live[data-state="live"]').waitFor({ timeout: LIVE_TIMEOUT });
  log('signed in; live updates connected');
  await screenshot('home');

  // 1b. the form renderer on its own, in this page: every supported type, and errors mapped
  await checkFormRenderer();
  log('the form renderer draws every supported type and places errors by JSON pointer');
  await checkGraphLayout();
  log('the diagram layout puts each step below the steps before it; loops go on the side');

  // 2. the definition and its diagram
  await page.locator('#nav a[data-nav="definitions"]').click();
  await page.getByRole('link', { name: WORKFLOW, exact: true }).click();
  await page.locator('svg.diagram g[data-step="approve"]').waitFor();
  expect(await page.locator('svg.diagram g.node').count() >= 3, 'the diagram draws every step');
  await screenshot('definition');

  // 3. start an instance from the start form
  await page.getByRole('link', { name: 'Start an instance' }).first().click();
  await page.getByLabel('Workflow').waitFor();
  expect(await page.getByLabel('Workflow').inputValue() === WORKFLOW, 'the start form preselects the workflow');
  await page.getByLabel('Data (JSON object)').fill('{"employee": "ann", "expense": "train tickets"}');
  await screenshot('start-form');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(/#\/instances\/[^/?]+$/);
  const instanceId = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  log(`started instance ${instanceId}`);
  await page.locator('[data-instance-status]').waitFor();
  await screenshot('instance-started');

  // 4. the inbox: the approval task shows up (live, or on load if already open)
  await page.locator('#nav a[data-nav="inbox"]').click();
  const card = page.locator(`.task-card[data-instance="${instanceId}"][data-step="approve"]`);
  await card.waitFor({ timeout: LIVE_TIMEOUT });
  log('the task is in the inbox');
  await screenshot('inbox');
  await page.setViewportSize({ width: 390, height: 844 });
  await card.waitFor();
  await screenshot('inbox-phone');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, `the inbox fits a phone's width (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1280, height: 860 });

  // 5. the task: bad data twice, then good data
  await card.getByRole('link').first().click();
  const amount = page.getByLabel('Amount');
  await amount.waitFor();
  await screenshot('task');
  const amountError = page.locator('.field[data-field="/amount"] .field-error');

  await amount.fill('0');
  await page.getByRole('button', { name: 'Complete task' }).click();
  await amountError.filter({ hasText: 'at least 1' }).waitFor();
  expect(await amount.getAttribute('aria-invalid') === 'true', 'the amount is marked invalid');
  await page.locator('.field[data-field="/category"] .field-error').filter({ hasText: 'Choose one' }).waitFor();
  log('bad data (browser check): the errors show next to the fields');
  await screenshot('task-error-browser');

  const refused = page.waitForResponse((r) => r.url().includes('/complete') && r.request().method() === 'POST');
  await page.getByLabel('Category').selectOption('travel');
  await amount.fill('7');
  await page.getByRole('button', { name: 'Complete task' }).click();
  const refusal = await refused;
  expect(refusal.status() === 400, `the server refuses 7 (not a multiple of 5) with 400, got ${refusal.status()}`);
  const problem = await refusal.json();
  expect(String(problem.type).endsWith('/form-invalid'), `the problem is form-invalid: ${JSON.stringify(problem)}`);
  await amountError.filter({ hasText: /multiple/i }).waitFor();
  log(`bad data (server check): "${(await amountError.textContent()).trim()}" next to the field`);
  await screenshot('task-error-server');

  await amount.fill('120');
  await page.getByLabel('Approved').check();
  await page.getByLabel('Comment').fill('fine, the receipt is attached');
  await page.getByLabel('Receipt number').fill('R-2041');
  await page.getByRole('button', { name: 'Add an item' }).click();
  await page.locator('[data-field="/tags"] input').first().fill('train');
  await page.getByRole('button', { name: 'Complete task' }).click();
  await page.waitForURL(new RegExp(`#/instances/${instanceId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  log('good data accepted');

  // 6. the instance completes, shown live on its page
  await page.locator('[data-instance-status="completed"]').waitFor({ timeout: LIVE_TIMEOUT });
  await page.locator('svg.diagram g[data-step="approve"][data-state="completed"]').waitFor();
  await page.locator('table.history').getByText('approve', { exact: true }).first().waitFor();
  const context_ = await page.locator('pre.json').first().textContent();
  const data = JSON.parse(context_);
  expect(data.amount === 120 && data.category === 'travel' && data.approved === true && data.receipt?.number === 'R-2041'
    && JSON.stringify(data.tags) === '["train"]', `the context has the form's data: ${context_}`);
  log('the instance completed; its page shows it');
  await screenshot('instance-completed');

  // 7. the instance list and the other pages render
  await page.locator('#nav a[data-nav="instances"]').click();
  await page.locator(`table.instances tr[data-id="${instanceId}"][data-status="completed"]`).waitFor();
  expect(!(await page.getByRole('button', { name: 'Show more' }).isVisible()), 'no "Show more" when there is no next page');
  await screenshot('instances');
  await page.setViewportSize({ width: 390, height: 844 });
  const listOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(listOverflow <= 1, `the instance list fits a phone's width (${listOverflow}px too wide)`);
  await screenshot('instances-phone');
  await page.setViewportSize({ width: 1280, height: 860 });

  // 8. a second instance: its task reassigned from the task page, then the instance canceled
  await page.goto(`${URL_}#/start?workflow=${encodeURIComponent(WORKFLOW)}`);
  await page.getByLabel('Data (JSON object)').fill('{"employee": "bob"}');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL((u) => /#\/instances\/[^/?]+$/.test(u.hash) && !u.hash.endsWith(instanceId));
  const second = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  await page.locator(`a[href="#/tasks/${second}/approve"]`).click({ timeout: LIVE_TIMEOUT });
  await page.getByText('Reassign this task').click();
  await page.getByLabel('Assignee', { exact: true }).fill('carol@example.com');
  await page.getByLabel('Candidates').fill('dave@example.com, erin@example.com');
  await page.getByRole('button', { name: 'Reassign' }).click();
  await page.getByText('Reassigned.').waitFor();
  await page.locator('.facts-grid').getByText('carol@example.com').waitFor();
  await screenshot('task-reassigned');
  await page.goto(`${URL_}#/instances/${encodeURIComponent(second)}`);
  await page.locator('table.history .badge.s-reassigned').waitFor({ timeout: LIVE_TIMEOUT });
  await page.locator('main').getByText('for carol@example.com').waitFor();
  log('the task was reassigned from its page; the history shows it');
  await page.getByLabel('Cancel reason').fill('a duplicate');
  await page.getByRole('button', { name: 'Cancel instance' }).click();
  await page.locator('[data-instance-status="canceled"]').waitFor({ timeout: LIVE_TIMEOUT });
  await page.locator('svg.diagram g[data-step="submit"][data-state="completed"]').waitFor();
  log(`instance ${second} canceled from its page`);
  await screenshot('instance-canceled');
  await page.locator('#nav a[data-nav="dlq"]').click();
  await page.waitForURL(/#\/dlq$/);
  await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
  await page.locator('main table, main .empty').first().waitFor();
  await screenshot('dlq');

  // 8a. the schedules page (admin): a schedule created through the API, paused and resumed
  // from its card, its next fire times and firings one click away
  await checkSchedules();

  // 8a'. messages: an order shows what it waits for; a message sent from the Messages page
  // completes it, and one nobody waits for is listed as kept
  if (ORDER_WORKFLOW) await checkMessages();

  // 8b. tasks that say what they are about, explicit choices, outcome buttons
  if (CHOICE_WORKFLOW) await checkTasksTellWhatTheyAreAbout();
  if (OUTCOME_WORKFLOW) await checkOutcomeButtons();
  // 8b. a claim, seen by a candidate signed in in another browser context
  if (PEER_TOKEN) {
    await checkClaimSeenByPeer(browser);
    log('a claim is seen as "taken" by another candidate in another browser context');
  }

  // 9. another tenant's user: counts from the lists (not an admin), sees nothing of the above
  if (TENANT_TOKEN) {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').fill(TENANT_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('.tiles').waitFor();
    expect(!(await page.locator('#nav a[data-nav="dlq"]').isVisible()), 'no DLQ link for a non-admin');
    const completed = (await page.locator('.tile.s-completed .tile-n').textContent()).trim();
    expect(completed === '0', `another tenant counts no completed instance, got ${completed}`);
    await screenshot('home-other-tenant');
    await page.locator('#nav a[data-nav="instances"]').click();
    await page.getByText('No instances match.').waitFor();
    await page.goto(`${URL_}#/instances/${encodeURIComponent(instanceId)}`);
    await page.getByRole('heading', { name: 'Instance not found' }).waitFor();
    log('another tenant sees none of these instances');
  }

  expect(accessibility.length === 0, `accessibility violations (axe-core):\n  ${accessibility.join('\n  ')}`);
  expect(problems.length === 0, `the page had errors:\n  ${problems.join('\n  ')}`);
}

/** The schedules page: a schedule of WORKFLOW created through the API (hourly, so it does
 * not fire during the test) shows as active with its trigger; Pause marks it paused and its
 * fire times empty; Resume brings five fire times back. Then it is deleted. */
async function checkSchedules() {
  const name = `browser-${Date.now()}`;
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const created = await fetch(new URL('api/v1/schedules', URL_), {
    method: 'POST', headers,
    body: JSON.stringify({ name, workflow: WORKFLOW, cron: '0 * * * *', timezone: 'Europe/Paris', data: { employee: 'scheduled' } }),
  });
  expect(created.status === 201, `creating a schedule answers 201, got ${created.status}: ${await created.text()}`);
  await page.locator('#nav a[data-nav="schedules"]').click();
  await page.waitForURL(/#\/schedules$/);
  const card = page.locator(`.schedule-card[data-schedule="${name}"]`);
  await card.waitFor();
  const text = await card.innerText();
  expect(text.includes('cron 0 * * * * (Europe/Paris)') && text.includes('active'), `the card says when it fires: ${text}`);
  await card.getByRole('button', { name: `Pause ${name}` }).click();
  await page.locator(`.schedule-card[data-schedule="${name}"] .badge`).filter({ hasText: 'paused' }).waitFor();
  await page.locator(`.schedule-card[data-schedule="${name}"]`).getByText('Fire times and firings').click();
  await page.locator(`.schedule-card[data-schedule="${name}"]`).getByText('None while paused.').waitFor();
  await screenshot('schedule-paused');
  await page.locator(`.schedule-card[data-schedule="${name}"]`).getByRole('button', { name: `Resume ${name}` }).click();
  await page.locator(`.schedule-card[data-schedule="${name}"] .badge`).filter({ hasText: 'active' }).waitFor();
  await page.locator(`.schedule-card[data-schedule="${name}"]`).getByText('Fire times and firings').click();
  const upcoming = page.locator(`.schedule-card[data-schedule="${name}"] .schedule-detail ol li`);
  await upcoming.nth(4).waitFor();
  expect(await upcoming.count() === 5, `five next fire times, got ${await upcoming.count()}`);
  await screenshot('schedules');
  const deleted = await fetch(new URL(`api/v1/schedules/${encodeURIComponent(name)}`, URL_), { method: 'DELETE', headers });
  expect(deleted.status === 200, `deleting the schedule answers 200, got ${deleted.status}`);
  log('the schedules page shows a schedule, pauses and resumes it, and lists its next fire times');
}

/** Messages: an order of ORDER_WORKFLOW started through the API shows on its page that it
 * waits for `payment_received (key K)`; "Send it" opens the Messages page with the name and
 * key filled in; sending it there says it was delivered to the order, which completes with
 * the data. A message for a key nobody waits on is kept and listed (its data as text). */
async function checkMessages() {
  const key = `B-${Date.now()}`;
  const id = await startInstance(ORDER_WORKFLOW, { order_id: key });
  await page.goto(`${URL_}#/instances/${encodeURIComponent(id)}`);
  const waiting = page.locator('.waiting-for li[data-waiting-step="wait_payment"]');
  await waiting.waitFor({ timeout: LIVE_TIMEOUT });
  const text = await waiting.innerText();
  expect(text.includes(`payment_received (key ${key}) at wait_payment`), `the order says what it waits for: ${text}`);
  await screenshot('instance-waiting-for-message');
  await waiting.getByRole('link', { name: 'Send it' }).click();
  await page.getByRole('heading', { name: 'Messages', exact: true }).waitFor();
  expect(await page.getByLabel('Message name').inputValue() === 'payment_received', 'the name is filled in');
  expect(await page.getByLabel('Correlation key').inputValue() === key, 'the key is filled in');
  await page.getByLabel('Data (JSON)').fill('{"amount": 12, "provider": "<b>psp</b>"}');
  await page.getByRole('button', { name: 'Send message' }).click();
  // `delivered to instance ...`, or (its wait not yet in the correlation table) `kept`, then
  // received: either way the order completes with it.
  await page.locator('main .notice').filter({ hasText: /delivered to instance|kept/ }).waitFor();
  const context = await completedContext(id);
  expect(context.payment && context.payment.amount === 12 && context.payment.provider === '<b>psp</b>',
    `the order completed with the payment: ${JSON.stringify(context)}`);

  const nobody = `nobody-${Date.now()}`;
  await page.getByLabel('Correlation key').fill(nobody);
  await page.getByLabel('Data (JSON)').fill('{"note": "<img src=x onerror=alert(1)>"}');
  await page.getByLabel('Keep for (optional)').fill('soon');
  await page.getByRole('button', { name: 'Send message' }).click();
  await page.locator('#message-ttl-error').filter({ hasText: 'ttl' }).waitFor();
  await page.getByLabel('Keep for (optional)').fill('10m');
  await page.getByRole('button', { name: 'Send message' }).click();
  await page.locator('main .notice').filter({ hasText: 'kept' }).waitFor();
  const row = page.locator('table.kept-messages tr').filter({ hasText: nobody });
  await row.waitFor();
  const rowText = await row.innerText();
  expect(rowText.includes('<img src=x onerror=alert(1)>'), `the kept message's data shows as text: ${rowText}`);
  expect(await page.locator('table.kept-messages img').count() === 0, 'no markup from data');
  await screenshot('messages');
  log('an order shows what it waits for; a message sent from the Messages page completes it; a kept one is listed');
}

/** Starts an instance through the API (as WEIR_TOKEN's user); resolves to its id. */
async function startInstance(workflow, data) {
  const r = await fetch(new URL('api/v1/instances', URL_), {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ workflow, data }),
  });
  expect(r.status === 202, `starting ${workflow} answers 202, got ${r.status}`);
  return (await r.json()).id;
}

/** The context of an instance once it completed (waits for it, with a deadline). */
async function completedContext(id) {
  const deadline = Date.now() + LIVE_TIMEOUT;
  for (;;) {
    const r = await fetch(new URL(`api/v1/instances/${encodeURIComponent(id)}`, URL_), { headers: { authorization: `Bearer ${TOKEN}` } });
    const v = await r.json();
    if (v.status === 'completed') return v.context;
    expect(Date.now() < deadline, `instance ${id} completes (it is ${v.status})`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** Three approvals of different employees and amounts are told apart on the inbox by their
 * titles and shown fields (a hostile name shows as text); the task page shows the amount;
 * "Complete task" is refused by the browser until a choice is made. */
async function checkTasksTellWhatTheyAreAbout() {
  const people = [
    { employee: 'Ann', amount: 50, receipt: { number: 'R-100' } },
    { employee: 'Bob', amount: 150, receipt: { number: 'R-200' } },
    { employee: '<b>Eve</b>', amount: 75 },
  ];
  const ids = [];
  for (const data of people) ids.push(await startInstance(CHOICE_WORKFLOW, data));
  await page.locator('#nav a[data-nav="inbox"]').click();
  const cards = ids.map((id) => page.locator(`.task-card[data-instance="${id}"][data-step="approve"]`));
  for (const card of cards) await card.waitFor({ timeout: LIVE_TIMEOUT });
  const texts = await Promise.all(cards.map((c) => c.innerText()));
  people.forEach((p, i) => {
    expect(texts[i].includes(`Approve ${p.employee}'s expense of ${p.amount}`), `card ${i} has its title: ${texts[i]}`);
    expect(/Amount\s*:?\s*/.test(texts[i]) && texts[i].includes(String(p.amount)), `card ${i} shows the amount: ${texts[i]}`);
  });
  expect(texts[0].includes('R-100') && texts[1].includes('R-200') && !texts[0].includes('Bob') && !texts[1].includes('Ann'),
    `the cards tell Ann's from Bob's: ${JSON.stringify(texts)}`);
  expect(texts[2].includes('receipt.number') && texts[2].includes('—'), `a missing shown field reads as a dash: ${texts[2]}`);
  expect(await cards[2].locator('b').count() === 0, 'a name holding HTML is shown as text, never as markup');
  log('three tasks told apart on the inbox by their titles and shown fields');
  await screenshot('inbox-shown-fields');

  // Bob's task: the page says the amount; nothing is chosen, and the browser refuses.
  await cards[1].getByRole('link').first().click();
  await page.getByRole('heading', { name: "Approve Bob's expense of 150" }).waitFor();
  const amount = page.locator('dl.task-fields div[data-path="amount"] dd');
  expect((await amount.textContent()).trim() === '150', 'the task page shows the amount');
  const yes = page.getByRole('radio', { name: 'Yes' });
  const no = page.getByRole('radio', { name: 'No' });
  expect(!(await yes.isChecked()) && !(await no.isChecked()), 'a required boolean starts with no choice');
  let posted = 0;
  const count = (r) => { if (r.url().includes('/complete') && r.method() === 'POST') posted += 1; };
  page.on('request', count);
  await page.getByRole('button', { name: 'Complete task' }).click();
  await page.locator('.field-error').filter({ hasText: 'Choose one' }).waitFor();
  expect(posted === 0, 'the browser sends nothing until a choice is made');
  expect(await yes.getAttribute('aria-invalid') === 'true', 'the choice is marked invalid');
  log('"Complete task" is refused by the browser until a choice is made');
  await screenshot('task-choice-required');
  await no.check();
  await page.getByRole('button', { name: 'Complete task' }).click();
  await page.waitForURL(/#\/instances\//);
  page.off('request', count);
  expect(posted === 1, `one completion sent, got ${posted}`);
  const context = await completedContext(ids[1]);
  expect(context.approved === false, `the choice "No" sends approved: false: ${JSON.stringify(context)}`);
  log('the explicit choice completed the task');
}

/** An outcome button completes a task with its data; the fields it sets are not drawn; a
 * task without `show` shows the whole context, collapsed. */
async function checkOutcomeButtons() {
  const id = await startInstance(OUTCOME_WORKFLOW, { employee: 'Dan', amount: 30 });
  await page.goto(`${URL_}#/inbox`);
  const card = page.locator(`.task-card[data-instance="${id}"][data-step="approve"]`);
  await card.waitFor({ timeout: LIVE_TIMEOUT });
  await card.getByRole('link').first().click();
  await page.getByRole('heading', { name: "Decide on Dan's expense" }).waitFor();
  const approve = page.getByRole('button', { name: 'Approve', exact: true });
  const reject = page.getByRole('button', { name: 'Reject', exact: true });
  await approve.waitFor();
  expect(await reject.isVisible(), 'one button per outcome');
  expect(await page.getByRole('button', { name: 'Complete task' }).count() === 0, 'no plain submit beside the outcomes');
  expect(await page.getByRole('radio').count() === 0, 'the field the outcomes set is not asked');
  const details = page.locator('details.task-context');
  expect(!(await details.getAttribute('open')), 'the context starts collapsed');
  await details.locator('summary').click();
  expect((await details.locator('pre').textContent()).includes('"Dan"'), 'the whole context is one click away');
  await page.getByLabel('Comment').fill('ok for the client visit');
  await screenshot('task-outcomes');
  await approve.click();
  await page.waitForURL(/#\/instances\//);
  const context = await completedContext(id);
  expect(context.approved === true && context.comment === 'ok for the client visit',
    `the outcome's data and the comment are sent: ${JSON.stringify(context)}`);
  log('an outcome button completed the task');
}

/** Starts an instance, claims its task as the signed-in user, and checks in a second browser
 * context, signed in as another candidate, that the inbox card and the task page say who took
 * it and offer neither "Claim" nor completion; then releases the claim. Both pages are checked
 * with axe-core. */
async function checkClaimSeenByPeer(browser) {
  await page.goto(`${URL_}#/start?workflow=${encodeURIComponent(WORKFLOW)}`);
  await page.getByLabel('Data (JSON object)').fill('{"employee": "cid"}');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL((u) => /#\/instances\/[^/?]+$/.test(u.hash));
  const id = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  await page.locator(`a[href="#/tasks/${id}/approve"]`).click({ timeout: LIVE_TIMEOUT });
  await page.getByRole('button', { name: 'Claim' }).click();
  await page.locator('.taken-by').filter({ hasText: USER }).waitFor();
  await page.getByRole('button', { name: 'Release' }).waitFor();
  await screenshot('task-claimed');

  const other = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  other.setDefaultTimeout(STEP_TIMEOUT);
  const mine = page;
  page = await other.newPage();
  page.on('pageerror', (err) => problems.push(`uncaught page error (second user): ${err.message}`));
  try {
    await page.goto(URL_);
    await page.getByLabel('API token').fill(PEER_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('#nav a[data-nav="inbox"]').click();
    const card = page.locator(`.task-card[data-instance="${id}"][data-step="approve"]`);
    await card.waitFor({ timeout: LIVE_TIMEOUT });
    await card.getByText(`Taken by ${USER}`).waitFor();
    expect(await card.getByRole('button', { name: /Claim/ }).count() === 0, 'no "Claim" on a task someone took');
    await screenshot('inbox-taken-second-user');
    await card.getByRole('link').first().click();
    await page.locator('.taken-by').filter({ hasText: USER }).waitFor();
    expect(await page.getByRole('button', { name: 'Complete task' }).isDisabled(), 'the second user may not complete a taken task');
    expect(await page.getByRole('button', { name: 'Claim' }).count() === 0, 'the second user may not claim a taken task');
    await screenshot('task-taken-second-user');
  } finally {
    page = mine;
    await other.close();
  }
  await page.getByRole('button', { name: 'Release' }).click();
  await page.locator('.taken-by').filter({ hasText: 'no one' }).waitFor();
}

/** Draws a rich schema with the dashboard's own form module, fills it, and checks the data
 * read back, the browser's checks, and where a server's errors land. */
async function checkFormRenderer() {
  const result = await page.evaluate(async () => {
    const { schemaForm } = await import('/assets/form.js');
    const schema = {
      type: 'object',
      required: ['name', 'count', 'level'],
      properties: {
        name: { type: 'string', title: 'Name', description: 'Who asks', minLength: 2 },
        count: { type: 'integer', title: 'Count', minimum: 1, maximum: 9 },
        ratio: { type: 'number', title: 'Ratio' },
        urgent: { type: 'boolean', title: 'Urgent' },
        level: { title: 'Level', enum: ['low', 'high'] },
        colours: { type: 'array', title: 'Colours', items: { enum: ['red', 'green', 'blue'] } },
        sizes: { type: 'array', title: 'Sizes', items: { type: 'integer' }, maxItems: 2 },
        address: { type: 'object', title: 'Address', required: ['city'], properties: { city: { type: 'string', title: 'City' }, zip: { type: 'string', title: 'Zip', pattern: '^[0-9]{5}$' } } },
        extra: { title: 'Extra', oneOf: [{ type: 'string' }, { type: 'number' }] },
      },
    };
    const f = schemaForm(schema);
    const host = document.createElement('form');
    host.append(f.element);
    document.body.append(host);
    const q = (sel) => host.querySelector(sel);
    const set = (field, value) => { const el = q(`[data-field="${field}"] input, [data-field="${field}"] select, [data-field="${field}"] textarea`); el.value = value; };
    const out = { labels: [...host.querySelectorAll('label, legend')].map((l) => l.textContent) };
    out.emptyErrors = f.validate().map((e) => e.field);
    set('/name', 'A'); set('/count', '3.5'); set('/address/zip', 'abc');
    out.badErrors = f.validate().map((e) => `${e.field} ${e.message}`);
    set('/name', 'Ann'); set('/count', '4'); set('/ratio', '0.25'); q('[data-field="/urgent"] input').checked = true;
    q('[data-field="/level"] select').value = '1';
    host.querySelectorAll('[data-field="/colours"] input')[2].checked = true;
    q('[data-field="/sizes"] .add-item').click(); q('[data-field="/sizes"] .add-item').click();
    const sizeInputs = host.querySelectorAll('[data-field="/sizes"] li input');
    sizeInputs[0].value = '10'; sizeInputs[1].value = '12';
    set('/address/city', 'Lyon'); set('/address/zip', '69001'); set('/extra', '"x"');
    out.goodErrors = f.validate();
    out.value = f.value();
    const unplaced = f.showErrors([
      { field: '/address', message: '"city" is a required property' },
      { field: '/sizes/1', message: '12 is too big' },
      { field: '', message: 'something about the whole' },
    ]);
    out.cityError = q('[data-field="/address/city"] .field-error').textContent;
    out.sizeError = host.querySelectorAll('[data-field="/sizes"] li .field-error')[1].textContent;
    out.unplaced = unplaced.map((e) => e.message);
    out.summary = q('.form-errors').textContent;
    out.invalidCity = q('[data-field="/address/city"] input').getAttribute('aria-invalid');
    out.describedBy = q('[data-field="/name"] input').getAttribute('aria-describedby');
    host.remove();
    return out;
  });
  const want = (cond, what) => expect(cond, `form renderer: ${what}: ${JSON.stringify(result)}`);
  want(['Name *', 'Count *', 'Level *', 'Address', 'City *', 'Colours', 'Sizes'].every((l) => result.labels.includes(l)), 'labels, with required marks');
  want(JSON.stringify(result.emptyErrors) === JSON.stringify(['/name', '/count', '/level', '/address/city']), 'required fields when empty');
  want(result.badErrors.some((e) => e.startsWith('/name Must be at least 2')) && result.badErrors.some((e) => e.startsWith('/count Enter a whole number'))
    && result.badErrors.some((e) => e.startsWith('/address/zip Must match')), 'length, integer and pattern checks');
  want(result.goodErrors.length === 0, 'good data passes');
  want(JSON.stringify(result.value) === JSON.stringify({ name: 'Ann', count: 4, ratio: 0.25, urgent: true, level: 'high', colours: ['blue'], sizes: [10, 12], address: { city: 'Lyon', zip: '69001' }, extra: 'x' }), 'the data read back');
  want(result.cityError.includes('required') && result.invalidCity === 'true', 'a server "required" error lands on the missing field');
  want(result.sizeError.includes('12 is too big'), 'an array item error lands on the item');
  want(result.unplaced.length === 1 && result.summary.includes('something about the whole'), 'an error about the whole form shows above it');
  want(result.describedBy.split(' ').some((id) => id.endsWith('-help')) && result.describedBy.split(' ').some((id) => id.endsWith('-error')), 'inputs are described by their help and error');
}

/** The diagram's layout on a graph with a fan-out, a join, a loop and a failure edge. */
async function checkGraphLayout() {
  const r = await page.evaluate(async () => {
    const { layout, diagram } = await import('/assets/graph.js');
    const graph = {
      nodes: ['join', 'a', 'b', 'start', 'check', 'end', 'oops'].map((id) => ({ id, type: id === 'check' ? 'gateway' : 'machine', label: id, initial: id === 'start' })),
      edges: [
        { from: 'start', to: 'a', on: 'success' }, { from: 'start', to: 'b', on: 'success' },
        { from: 'a', to: 'join', on: 'success' }, { from: 'b', to: 'join', on: 'success' },
        { from: 'join', to: 'check', on: 'success' },
        { from: 'check', to: 'start', condition: 'context.again', on: 'success' },
        { from: 'check', to: 'end', default: true, on: 'success' },
        { from: 'a', to: 'oops', on: 'failure' },
      ],
      states: { start: 'completed', a: 'failed', b: 'running' },
    };
    const l = layout(graph);
    const layer = Object.fromEntries([...l.pos].map(([id, p]) => [id, p.layer]));
    const back = [...l.back].map((i) => `${l.edges[i].from}->${l.edges[i].to}`);
    const figure = diagram(graph);
    const states = Object.fromEntries([...figure.querySelectorAll('g[data-step]')].map((g) => [g.dataset.step, g.dataset.state]));
    return { layer, back, states, dashed: figure.querySelectorAll('path.edge-alt').length, legend: figure.querySelector('.legend').textContent };
  });
  const want = (cond, what) => expect(cond, `diagram: ${what}: ${JSON.stringify(r)}`);
  want(r.layer.start === 0 && r.layer.a === 1 && r.layer.b === 1 && r.layer.join === 2 && r.layer.check === 3 && r.layer.end === 4 && r.layer.oops === 2, 'longest-path layers');
  want(JSON.stringify(r.back) === JSON.stringify(['check->start']), 'the loop edge is the back edge');
  want(r.states.a === 'failed' && r.states.b === 'running' && r.states.end === 'pending', 'nodes carry their state');
  want(r.dashed === 1, 'the failure edge is drawn as an alternative path');
  want(['failed', 'running', 'completed', 'pending'].every((s) => r.legend.includes(s)), 'the legend names the states shown');
}

let code = 0;
try {
  await main();
  log(`PASSED in ${((Date.now() - started) / 1000).toFixed(1)}s`);
} catch (err) {
  code = 1;
  console.error(`run.mjs: FAILED: ${err.message}`);
  if (problems.length) console.error(`page problems:\n  ${problems.join('\n  ')}`);
  if (page) {
    try {
      await screenshot('failure');
      console.error(`the page when it failed: ${page.url()}\n${(await page.locator('main').innerText()).slice(0, 2000)}`);
    } catch {
      // the browser may be gone
    }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(overall);
}
process.exit(code);

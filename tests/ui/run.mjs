// Drives Debian's Chromium (playwright-core) through accesskeyd's web pages like a person
// would. Started by tests/e2e/ui.rs with the daemon and slapd already running:
//   node run.mjs <scenario>   with ACCESSKEYD_URL, ACCESSKEYD_ADMIN, ACCESSKEYD_ADMIN_PASSWORD,
//   ACCESSKEYD_LDAP_DIR, ACCESSKEYD_SCREENSHOTS (a directory for the page screenshots).
// Exits 0 when every step held; otherwise prints the failed step and exits 1.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const BASE = process.env.ACCESSKEYD_URL;
const ADMIN = process.env.ACCESSKEYD_ADMIN;
const ADMIN_PASSWORD = process.env.ACCESSKEYD_ADMIN_PASSWORD;
const LDAP_DIR = process.env.ACCESSKEYD_LDAP_DIR;
const SHOTS = process.env.ACCESSKEYD_SCREENSHOTS;
mkdirSync(SHOTS, { recursive: true });

// Without the networking flags Chromium's own connection attempts are refused here.
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function person() {
  const context = await browser.newContext({ baseURL: BASE, viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, username, password, directory) {
  await page.goto("/ui/keys");
  assert.match(page.url(), /\/ui\/login/, "not signed in: the key page sends people to sign-in");
  const select = page.getByLabel("Directory");
  if (directory && (await select.count()) > 0) await select.selectOption(directory);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/ui\/keys/);
}

async function createKey(page, label) {
  await page.getByLabel("Label").fill(label);
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByTestId("new-key-password").waitFor();
  const key = await page.getByTestId("new-key-id").inputValue();
  const password = await page.getByTestId("new-key-password").inputValue();
  assert.match(key, /^akd_/);
  assert.match(password, /^akp_/);
  return { key, password };
}

function basic(key, password) {
  return { Authorization: "Basic " + Buffer.from(`${key}:${password}`).toString("base64") };
}

async function meWithKey(k) {
  const r = await fetch(`${BASE}/api/users/me`, { headers: basic(k.key, k.password) });
  return { status: r.status, body: r.status === 200 ? await r.json() : null };
}

const scenarios = {
  // A person: signs in through LDAP, creates a key, uses it, deletes it.
  async keys() {
    const { page } = await person();
    // The pages' rules (CSP, CSRF, key sessions, ended sessions, the 403 page) are checked
    // in-process by the fast tier (tests/api/pages.rs); here a person uses them in a browser.
    await page.goto("/ui/login");
    await shot(page, "sign-in");
    await signIn(page, "alice", "alice-pw", LDAP_DIR);
    await assert.doesNotReject(page.getByRole("heading", { name: "My access keys" }).waitFor());
    assert.match(await page.getByTestId("validity").innerText(), /work until/);

    const k = await createKey(page, "Power BI sales report");
    await shot(page, "key-created");
    const copy = page.getByRole("button", { name: "Copy the password" });
    assert.equal(await copy.count(), 1, "a copy button beside the password");
    assert.match(await page.locator(".warning").innerText(), /only this once/);

    // The key and password work from a script: Basic and login.
    const me = await meWithKey(k);
    assert.equal(me.status, 200);
    assert.equal(me.body.username, "alice");
    const login = await fetch(`${BASE}/api/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: k.key, password: k.password }),
    });
    assert.equal(login.status, 200, "login with the key");
    assert.ok(login.headers.get("x-sq-auth"));

    // A reload shows the list, never the password again.
    await page.reload();
    assert.match(page.url(), /\/ui\/keys$/);
    assert.equal(await page.getByTestId("new-key-password").count(), 0);
    assert.ok(!(await page.content()).includes(k.password), "the password is gone after reload");
    assert.ok((await page.content()).includes(k.key), "the key is listed");
    await shot(page, "my-access-keys");

    // Deleting asks first, then the key stops working.
    await page.getByRole("link", { name: "Delete key Power BI sales report" }).click();
    await shot(page, "delete-confirmation");
    await page.getByRole("button", { name: "Delete key" }).click();
    await page.waitForURL(/notice=key-deleted/);
    assert.match(await page.getByRole("status").innerText(), /deleted/);
    assert.equal((await meWithKey(k)).status, 401, "a deleted key no longer works");

    // Signing out ends the session; the pages send the person to sign-in again.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/notice=signed-out/);
    await page.goto("/ui/keys");
    assert.match(page.url(), /\/ui\/login/);

    // A key typed into the sign-in form is refused with a message.
    await page.getByLabel("Directory").selectOption({ index: 0 });
    await page.getByLabel("Username").fill(k.key);
    await page.getByLabel("Password").fill(k.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    assert.match(await page.getByRole("alert").innerText(), /access key/i);
    await shot(page, "key-refused-at-sign-in");

    // On a phone.
    const phone = await browser.newContext({ baseURL: BASE, viewport: { width: 390, height: 844 }, isMobile: true });
    const mp = await phone.newPage();
    await signIn(mp, "alice", "alice-pw", LDAP_DIR);
    await shot(mp, "my-access-keys-phone");
  },

  // A person: creates a read-only key for a report, rotates a key a job uses.
  async "key-controls"() {
    const { page } = await person();
    await signIn(page, "alice", "alice-pw", LDAP_DIR);
    await page.getByLabel("Label").fill("Excel refresh");
    await page.getByLabel("Read only").check();
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByTestId("new-key-password").waitFor();
    const r = {
      key: await page.getByTestId("new-key-id").inputValue(),
      password: await page.getByTestId("new-key-password").inputValue(),
    };
    assert.equal((await meWithKey(r)).status, 200, "a read key reads");
    const write = await fetch(`${BASE}/api/accesskeys`, {
      method: "POST",
      headers: { ...basic(r.key, r.password), "Content-Type": "application/json" },
      body: JSON.stringify({ name: "more" }),
    });
    assert.equal(write.status, 403, "and writes nothing");
    await page.goto("/ui/keys");
    assert.equal(await page.getByTestId("read-only").count(), 1, "the list marks it read-only");

    const k = await createKey(page, "Nightly ETL");
    await page.goto("/ui/keys");
    await page.getByRole("button", { name: "Rotate key Nightly ETL" }).click();
    await page.getByTestId("new-key-password").waitFor();
    assert.match(await page.locator("#created-title").innerText(), /rotated/);
    assert.match(await page.locator(".warning").innerText(), /old password keeps working until/);
    assert.equal(await page.getByTestId("new-key-id").inputValue(), k.key, "the same key");
    const rotated = { key: k.key, password: await page.getByTestId("new-key-password").inputValue() };
    assert.notEqual(rotated.password, k.password);
    assert.equal((await meWithKey(rotated)).status, 200, "the new password works");
    assert.equal((await meWithKey(k)).status, 200, "the old one too, for the overlap");
    await shot(page, "key-rotated");
    await page.reload();
    assert.ok(!(await page.content()).includes(rotated.password), "shown once");

    // Narrowing where the key works: from elsewhere it is refused (this browser's script
    // calls come from 127.0.0.1).
    const row = () => page.locator("tr", { hasText: "Nightly ETL" });
    await row().getByText("Usable from anywhere").click();
    await page.getByLabel("Allowed networks of Nightly ETL").fill("10.20.0.0/16");
    await row().getByRole("button", { name: "Save networks" }).click();
    await page.waitForURL(/notice=key-networks/);
    assert.match(await page.getByRole("status").innerText(), /used from was changed/);
    assert.ok((await page.content()).includes("Only from 10.20.0.0/16"));
    assert.equal((await meWithKey(rotated)).status, 401, "not from this network");
    await row().getByText("Only from 10.20.0.0/16").click();
    await page.getByLabel("Allowed networks of Nightly ETL").fill("127.0.0.0/8");
    await row().getByRole("button", { name: "Save networks" }).click();
    await page.waitForURL(/notice=key-networks/);
    assert.equal((await meWithKey(rotated)).status, 200, "from here again");
  },

  // An admin: sees and deletes everyone's keys, overrides validity, changes the
  // configuration, runs a directory sync, reads the audit trail. A non-admin cannot.
  async admin() {
    const bob = await person();
    await signIn(bob.page, "bob", "bob-pw", LDAP_DIR);
    const bobKey = await createKey(bob.page, "bob nightly export");
    await bob.page.goto("/ui/admin/keys");
    await shot(bob.page, "admin-forbidden");

    const admin = await person();
    await signIn(admin.page, ADMIN, ADMIN_PASSWORD, "builtin");
    await admin.page.getByRole("link", { name: "Admin Panel" }).click();
    await admin.page.waitForURL(/\/ui\/admin$/);
    await admin.page.getByRole("link", { name: "Access Keys", exact: true }).click();
    await admin.page.waitForURL(/\/ui\/admin\/keys/);
    assert.ok((await admin.page.content()).includes(bobKey.key), "the admin sees bob's key");
    await shot(admin.page, "admin-access-keys");

    // Filter by user, then delete bob's key.
    await admin.page.getByLabel("Filter by user or label").fill("bob");
    await admin.page.getByRole("button", { name: "Filter" }).click();
    await admin.page.waitForURL(/q=bob/);
    const rows = admin.page.locator("tbody tr");
    assert.equal(await rows.count(), 1);
    await admin.page.getByRole("link", { name: "Delete key bob nightly export of bob" }).click();
    await admin.page.getByRole("button", { name: "Delete key" }).click();
    await admin.page.waitForURL(/notice=key-deleted/);
    assert.equal((await meWithKey(bobKey)).status, 401, "bob's deleted key stops working");

    // Override bob's validity to 0: his key stops; reset: it works again.
    await bob.page.goto("/ui/keys");
    const bobKey2 = await createKey(bob.page, "bob second key");
    assert.equal((await meWithKey(bobKey2)).status, 200);
    await admin.page.getByRole("link", { name: "Users" }).click();
    await shot(admin.page, "admin-users");
    await admin.page.getByRole("link", { name: "Manage bob" }).click();
    await admin.page.getByLabel("Override (minutes)").fill("0");
    await admin.page.getByRole("button", { name: "Save override" }).click();
    await admin.page.waitForURL(/notice=saved/);
    assert.match(await admin.page.getByTestId("effective-validity").innerText(), /disabled/);
    await shot(admin.page, "admin-user");
    assert.equal((await meWithKey(bobKey2)).status, 401, "override 0 stops bob's key");
    await bob.page.goto("/ui/keys");
    assert.match(await bob.page.getByTestId("validity").innerText(), /disabled by an administrator/);
    await shot(bob.page, "my-access-keys-disabled");
    await admin.page.getByRole("button", { name: "Reset to the system value" }).click();
    await admin.page.waitForURL(/notice=saved/);
    assert.equal((await meWithKey(bobKey2)).status, 200, "reset: the key works again");

    // Bob's session duration: an override of 45 minutes.
    await admin.page.getByLabel("Session duration (minutes)").fill("45");
    await admin.page.getByRole("button", { name: "Save session duration" }).click();
    await admin.page.waitForURL(/notice=saved/);
    assert.match(await admin.page.getByTestId("session-duration").innerText(), /45 minutes \(override\)/);
    await admin.page.getByRole("button", { name: "Reset session duration to the system value" }).click();
    await admin.page.waitForURL(/notice=saved/);
    assert.match(await admin.page.getByTestId("session-duration").innerText(), /^720 minutes$/);

    // The delete-user confirmation counts the keys that go with the user.
    await admin.page.getByRole("link", { name: "Delete user…" }).click();
    assert.match(await admin.page.locator("main").innerText(), /1 access key/);
    await admin.page.getByRole("link", { name: "Cancel" }).click();

    // Configuration: ValidityWithoutUserLogin.
    await admin.page.getByRole("link", { name: "Configuration" }).click();
    await shot(admin.page, "admin-configuration");
    const path = "Authentication/AccessKey/ValidityWithoutUserLogin";
    const card = admin.page.locator(`section[data-option="${path}"]`);
    await card.getByLabel(`New value of ${path}`).fill("30");
    await card.getByRole("button", { name: "Save" }).click();
    await admin.page.waitForURL(/notice=saved/);
    assert.match(await admin.page.getByTestId(`value-${path}`).innerText(), /^30 days/);
    const opts = await admin.page.request.get("/api/system/configuration/options");
    const opt = (await opts.json()).configurationOptions.find((o) => o.path === path);
    assert.equal(opt.value, 30, "the API sees the new value");
    await card.getByLabel(`New value of ${path}`).fill("-3");
    await card.getByRole("button", { name: "Save" }).click();
    assert.match(await admin.page.getByRole("alert").innerText(), /.+/, "an invalid value is explained");

    // Directories: a dry run lists who would be removed and removes nobody.
    await admin.page.getByRole("link", { name: "Directories" }).click();
    await shot(admin.page, "admin-directories");
    await admin.page.locator(`#dir-${LDAP_DIR}`).getByRole("button", { name: "Dry run" }).click();
    await admin.page.waitForURL(/\/runs\/\d+/);
    assert.match(await admin.page.getByTestId("run-status").innerText(), /dry run: nothing changed/);
    await shot(admin.page, "admin-dry-run");

    // Audit: filtered by action.
    await admin.page.getByRole("link", { name: "Audit" }).click();
    await admin.page.getByLabel("Action").fill("access_key.delete");
    await admin.page.getByRole("button", { name: "Filter" }).click();
    await admin.page.waitForURL(/action=access_key.delete/);
    const actions = await admin.page.locator("tbody tr td:nth-child(2)").allInnerTexts();
    assert.ok(actions.length >= 1 && actions.every((a) => a === "access_key.delete"), actions.join(","));
    await admin.page.goto("/ui/admin/audit");
    await shot(admin.page, "admin-audit");

    // Deleting a user takes their keys and sessions with them.
    const carol = await person();
    await signIn(carol.page, "carol", "carol-pw", LDAP_DIR);
    const carolKey = await createKey(carol.page, "carol report");
    await admin.page.goto("/ui/admin/users");
    await admin.page.getByRole("link", { name: "Manage carol" }).click();
    await admin.page.getByRole("link", { name: "Delete user…" }).click();
    assert.match(await admin.page.locator("main").innerText(), /1 access key/);
    await admin.page.getByRole("button", { name: "Delete user and keys" }).click();
    await admin.page.waitForURL(/notice=user-deleted/);
    assert.equal((await meWithKey(carolKey)).status, 401, "the deleted user's key stops");
    await carol.page.goto("/ui/keys");
    assert.match(carol.page.url(), /\/ui\/login\?notice=expired/, "the deleted user's session ended");
  },

  // An admin lands on the overview (tests/e2e/ui.rs arranged: keys working 1, lapsing 1,
  // stopped 1; 8 uses in the last 30 days, 5 today; two runs of the LDAP directory, one
  // that removed 2 and one blocked that would have removed 7), then downloads the report.
  async overview() {
    const admin = await person();
    await signIn(admin.page, ADMIN, ADMIN_PASSWORD, "builtin");
    await admin.page.getByRole("link", { name: "Admin Panel" }).click();
    await admin.page.waitForURL(/\/ui\/admin$/);
    const page = admin.page;
    assert.equal(await page.getByRole("link", { name: "Overview" }).getAttribute("aria-current"), "page");

    // Four charts: keys by state, uses per day, runs per directory, the soonest lapses.
    assert.equal(await page.locator("svg.chart").count(), 4, "four drawn charts");
    const states = page.getByRole("img", { name: /3 access keys: 1 working, 1 lapsing, 1 stopped/ });
    assert.equal(await states.count(), 1, "the state chart names its numbers");
    assert.equal(await page.getByTestId("state-working").innerText(), "1");
    assert.equal(await page.getByTestId("state-lapsing").innerText(), "1");
    assert.equal(await page.getByTestId("state-stopped").innerText(), "1");

    assert.match(await page.getByTestId("uses-total").innerText(), /^8 key use\(s\) in the last 30 days/);
    const days = page.getByTestId("uses-table").locator("tbody tr");
    assert.equal(await days.count(), 30, "thirty days, the days without use included");
    // Inside a closed <details>: read as text, not as rendered.
    assert.equal(await days.nth(29).locator("td").nth(1).textContent(), "5", "today");
    assert.equal(await days.nth(27).locator("td").nth(1).textContent(), "3", "two days ago");
    assert.equal(await days.nth(28).locator("td").nth(1).textContent(), "0");
    const bars = page.getByRole("img", { name: /over the last 30 days: 8 in all/ }).locator("rect");
    assert.equal(await bars.count(), 30);

    const runs = page.locator("table[data-testid^=runs-] tbody tr");
    assert.equal(await runs.count(), 2);
    assert.deepEqual(await runs.locator("td:nth-child(2)").allInnerTexts(), ["ok", "blocked"]);
    assert.deepEqual(await runs.locator("td:nth-child(3)").allInnerTexts(), ["2", "7"]);
    const runBars = page.getByRole("img", { name: /The last 2 sync runs/ }).locator("rect.bar");
    assert.deepEqual(
      await runBars.evaluateAll((rs) => rs.map((r) => r.getAttribute("class"))),
      ["bar good", "bar warn"],
    );

    const soonest = page.getByTestId("soonest").locator("tbody tr");
    assert.equal(await soonest.count(), 2, "the stopped key lapses no more");
    assert.match(await soonest.nth(0).innerText(), /^carol/);
    assert.match(await soonest.nth(1).innerText(), /^bob/);
    const lapseChart = page.getByTestId("soonest-chart");
    assert.match(await lapseChart.getAttribute("aria-labelledby"), /soonest-title/);
    assert.match(await lapseChart.locator("title").textContent(), /the 2 people whose keys lapse soonest stop: carol \d+, bob \d+$/);
    assert.equal(await lapseChart.locator("rect.bar").count(), 2, "a bar per person");
    await shot(page, "admin-overview");

    // The credential report downloads as CSV: a header and one line per key.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download the credential report (CSV)" }).click(),
    ]);
    assert.match(download.suggestedFilename(), /^accesskeyd-keys-\d{4}-\d{2}-\d{2}\.csv$/);
    const lines = readFileSync(await download.path(), "utf8").trim().split(/\r?\n/);
    assert.match(lines[0], /^key_id,label,owner_username,owner_id,directory,scope,/);
    assert.equal(lines.length, 4, lines.join("\n"));
    assert.ok(lines.some((l) => l.includes("carol's export")), lines.join("\n"));
  },
};

const name = process.argv[2];
let code = 0;
try {
  if (!scenarios[name]) throw new Error(`no scenario ${name}`);
  await scenarios[name]();
  console.log(`scenario ${name}: ok`);
} catch (e) {
  console.error(`scenario ${name} failed: ${e.stack || e}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);

import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's Chromium, headless, without the network chatter of a desktop browser. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page of a fresh browser context, signed in to the workbench; `problems` collects page errors and console errors. */
export async function signIn(browser: Browser, baseUrl: string, username: string, password: string, printedName: string): Promise<Page & { problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = Object.assign(await context.newPage(), { problems: [] as string[] });
  page.on('pageerror', (err) => page.problems.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error' && !/401|403|Failed to load resource/.test(msg.text())) page.problems.push(msg.text()); });
  await page.goto(baseUrl);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(printedName).first().waitFor();
  return page;
}

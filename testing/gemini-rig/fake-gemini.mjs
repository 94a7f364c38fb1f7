#!/usr/bin/env node
// A small fake Gemini API on loopback, for driving the real Gemini CLI offline
// (GOOGLE_GEMINI_BASE_URL points here, GEMINI_API_KEY is any string). It plays the scripted
// model of ../fake-model.mjs, whose header lists the script and the environment, for
// generateContent and streamGenerateContent alike. Requests that are not the agent's own turn
// (Gemini CLI's side queries with a JSON response schema, such as the next-speaker check) get
// {"next_speaker":"user"}-style JSON answers.
import { decide, hold, script, sendJSON, serve } from '../fake-model.mjs';

// partsText is what the model reads of a turn: its texts and its tools' responses.
const partsText = (c) =>
  (c?.parts ?? []).map((p) => p.text ?? (p.functionResponse ? JSON.stringify(p.functionResponse.response ?? {}) : '')).join('\n');

// sideQuery reports whether a request is one of Gemini CLI's side queries (a JSON response
// schema), not the agent's own turn.
function sideQuery(body) {
  const cfg = body.generationConfig;
  return cfg?.responseMimeType === 'application/json' || cfg?.responseJsonSchema || cfg?.responseSchema;
}

function decideFor(body) {
  if (sideQuery(body))
    return { kind: 'text', text: JSON.stringify({ next_speaker: 'user', reasoning: 'fake', complexity_reasoning: 'fake', complexity_score: 1 }) };
  const contents = body.contents ?? [];
  const last = contents[contents.length - 1];
  const fr = (last?.parts ?? []).find((p) => p.functionResponse);
  return decide({
    offered: (body.tools ?? []).flatMap((t) => (t.functionDeclarations ?? []).map((f) => ({ name: f.name }))),
    called: contents.flatMap((c) => (c.parts ?? []).filter((p) => p.functionCall).map((p) => p.functionCall.name)),
    sawChannel: contents.some((c) => c.role === 'user' && script.trigger.test(partsText(c).replaceAll('\\"', '"'))),
    lastOutput: fr ? JSON.stringify(fr.functionResponse.response ?? {}) : null,
    matches: (name, want) => name === want || name.endsWith('_' + want),
  });
}

function answer(d) {
  const part = d.kind === 'tool' ? { functionCall: { name: d.name, args: JSON.parse(d.args) } } : { text: d.text };
  return {
    candidates: [{ content: { role: 'model', parts: [part] }, finishReason: 'STOP', index: 0 }],
    usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 5, totalTokenCount: 15 },
    modelVersion: 'fake',
  };
}

serve('fake-gemini', (method, url, body, res) => {
  if (method === 'POST' && url.endsWith(':countTokens')) return sendJSON(res, 200, { totalTokens: 10 });
  if (method === 'POST' && url.endsWith(':embedContent')) return sendJSON(res, 200, { embedding: { values: [0, 0, 0] } });
  // Side queries are answered at once; the agent's turns wait for FAKE_HOLD_FILE.
  const wait = sideQuery(body) ? (f) => f() : hold;
  if (method === 'POST' && url.endsWith(':generateContent')) return wait(() => sendJSON(res, 200, answer(decideFor(body))));
  if (method === 'POST' && url.endsWith(':streamGenerateContent')) {
    return wait(() => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(`data: ${JSON.stringify(answer(decideFor(body)))}\r\n\r\n`);
      res.end();
    });
  }
  if (method === 'GET' && url.includes('/models')) return sendJSON(res, 200, { models: [] });
  sendJSON(res, 404, { error: { code: 404, message: 'fake: no such endpoint', status: 'NOT_FOUND' } });
});

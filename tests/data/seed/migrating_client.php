<?php
// A client written for the vendor's interface, as a migrating customer runs it: curl
// posting form-data like the seed's example, reading `code` from the batch IVR, `ret`
// from the other services and `code` 1 from /api/cdrs. Prints what it received as JSON.
// Usage: php migrating_client.php URL APPID ACCESSKEY VOICE
[$script, $baseUrl, $appid, $accesskey, $voice] = $argv;

function post(string $url, array $fields): array
{
    $curl = curl_init();
    curl_setopt($curl, CURLOPT_URL, $url);
    curl_setopt($curl, CURLOPT_POST, 1);
    curl_setopt($curl, CURLOPT_POSTFIELDS, $fields);
    curl_setopt($curl, CURLOPT_RETURNTRANSFER, 1);
    $response = curl_exec($curl);
    curl_close($curl);
    return json_decode($response, true);
}

$auth = ['appid' => $appid, 'accesskey' => $accesskey];
$api = $baseUrl . '/api/yunhu';
$play = [
    'service' => 'App.Sip_Call.PlayVoice',
    'nationcode' => 'id',
    'voicetype' => 1,
    'voicefile' => $voice,
    'waittime' => 60,
    'todayonly' => 1,
];
$seen = [];

// The seed's literal numbers: none is Indonesian, so nothing may look like a success.
$seen['literal'] = post($api, $play + $auth + ['destnumber' => '133，134，135，135']);

// Numbers as Indonesian customers write them.
$seen['batch'] = post($api, $play + $auth + ['destnumber' => '081234500004，0812-3450-0005']);
$taskid = $seen['batch']['data']['taskid'] ?? '';

$seen['status'] = post($api, ['service' => 'App.Sip_Call.TaskStatus', 'taskid' => $taskid] + $auth);
$seen['cancel'] = post($api, ['service' => 'App.Sip_Call.CancelTask', 'taskid' => $taskid] + $auth);
$seen['login'] = post($api, ['service' => 'App.Sip_Auth.Login'] + $auth);
$seen['bill'] = post($api, ['service' => 'App.Sip_Cdr.GetBill', 'syncflag' => 3] + $auth);

// The paged records, looked up by the number as the customer wrote it.
$seen['cdrs'] = post($baseUrl . '/api/cdrs', $auth + [
    'starttime' => gmdate('Y-m-d H:i:s', time() - 86400),
    'endtime' => gmdate('Y-m-d H:i:s', time() + 86400),
    'callnumber' => '081234500004',
]);

// What the client's own checks conclude, the way such clients are written.
$seen['checks'] = [
    'literal_is_not_a_success' => !($seen['literal']['code'] === 200
        && ($seen['literal']['data']['status'] ?? 0) === 0),
    'ret_of_other_services' => [
        $seen['status']['ret'] ?? null,
        $seen['cancel']['ret'] ?? null,
        $seen['login']['ret'] ?? null,
        $seen['bill']['ret'] ?? null,
    ],
    'cdrs_ok' => $seen['cdrs']['code'] === 1,
    'cdrs_ids' => array_map(fn ($row) => $row['id'], $seen['cdrs']['data']['data']),
    'cdrs_numbers' => array_map(fn ($row) => $row['destnumber'], $seen['cdrs']['data']['data']),
];
echo json_encode($seen, JSON_UNESCAPED_UNICODE);
